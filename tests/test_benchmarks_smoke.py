"""The benchmark at its tiny size against the real server, so it never rots.

No timing assertions: only that it runs, cleans up, and reports every workload with a
ratio against a baseline from the same run, and every row of issue 11's goal table (on its
own private redis-server when the binary is there, else on the suite's server). It runs in the suite's own database
(``REDIS_URL``), which need not be empty: ``--allow-nonempty`` with a namespace of the
test's own, so it writes and deletes only keys under that prefix. An unreachable server
skips, unless ``CI`` or ``CONVSTORE_REQUIRE_REDIS`` is set.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
import redis

from conftest import REDIS_URL, REQUIRE_REDIS, new_namespace
from convstore import ConversationStore, codec
from convstore.connections import raw_reply_client

ROOT = Path(__file__).resolve().parent.parent
BENCH_URL = REDIS_URL
WORKLOADS = [f"W{i}" for i in range(1, 10)]
GOALS = [
    "one append, wall",
    "one append, Redis process CPU",
    "one append, client CPU",
    "batch append",
    "read all",
    "newest 20 of",
    "vs sync, every round",
    "vs the fastest peer driven the same way",
    "bytes per message",
]

pytestmark = pytest.mark.real_redis


def _client() -> redis.Redis:
    client = redis.Redis.from_url(BENCH_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        client.close()
        message = f"the real Redis server at {BENCH_URL} is unreachable: {exc}"
        if REQUIRE_REDIS:
            pytest.fail(
                message + " (required: CI or CONVSTORE_REQUIRE_REDIS is set)", pytrace=False
            )
        pytest.skip(message)
    return client


def test_tiny_benchmark_reports_every_workload_and_ratio(tmp_path: Path) -> None:
    client = _client()
    namespace = new_namespace()
    bystander = f"bystander-{uuid.uuid4().hex}"  # a key of someone else's in the same database
    client.set(bystander, b"not the benchmark's")
    try:
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from benchmarks.runner import main

        argv = ["--redis-url", BENCH_URL, "--size", "tiny", "--out", str(tmp_path)]
        assert main(argv) == 2, "a database that holds keys is refused by default"
        code = main([*argv, "--allow-nonempty", "--namespace", namespace])
        assert code == 0
        left = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        assert left == [], "the benchmark left keys behind"
        assert client.get(bystander) == b"not the benchmark's"
    finally:
        client.delete(bystander)
        for key in client.scan_iter(match=f"{namespace}:*", count=1000):
            client.delete(key)
        client.close()

    report = json.loads((tmp_path / "results.json").read_text())
    assert report["meta"]["namespace"] == namespace
    convstore = [r for r in report["results"] if r["role"] == "convstore"]
    assert {r["workload"] for r in convstore} == set(WORKLOADS)
    for mode in ("sync", "async"):
        have = {r["workload"] for r in convstore if r["mode"] == mode}
        need = set(WORKLOADS) - {"W8"} - ({"W7"} if mode == "async" else set())
        assert need <= have, f"{mode}: missing {sorted(need - have)}"
    keys = {(r["workload"], r["variant"], r["mode"], r["n"]) for r in convstore}
    ratios = {(r["workload"], r["variant"], r["mode"], r["n"]): r for r in report["ratios"]}
    assert keys == set(ratios), "every convstore figure needs a ratio"
    for row in ratios.values():
        assert row["baseline"] and row["baseline_value"] > 0 and row["ratio"] > 0
    assert report["targets"] and all("met" in t for t in report["targets"])
    assert set(report["peers"]) == {"langchain-community", "llama-index"}
    chart = report["chart"]
    assert (chart.endswith(".png") and Path(chart).exists()) or "not installed" in chart
    _check_goals(report["goals"])


def _check_goals(section: dict[str, object]) -> None:
    goals = section["goals"]
    assert isinstance(goals, list)
    for name in GOALS:
        assert any(name in g["what"] for g in goals), f"goal row missing: {name}"
    # bytes at each size of the tiny run, and the many-sessions row
    assert len([g for g in goals if "bytes per message" in g["what"]]) == 3
    for read in ("read all", "newest 20 of"):  # each read as typed values and as dicts
        forms = [g["what"] for g in goals if g["what"].startswith(read)]
        assert len(forms) == 2 and "messages.read" in forms[0] and "history" in forms[1], forms
    for g in goals:
        assert g["op"] in (">=", "<=") and g["target"] > 0 and g["baseline"]
        if g["ratio"] is None:
            assert g["met"] is None, g
        else:
            assert g["ratio"] > 0 and g["met"] in (True, False), g
    peers = section["peers"]
    assert isinstance(peers, dict)
    assert set(peers) == {"langchain-community", "llama-index", "aiecs ContextEngine"}
    assert section["reply_parser"] and section["server"]
    server_side = section["server_side"]
    assert isinstance(server_side, dict)
    assert any("evalsha" in cmds for cmds in server_side.values()), "commandstats per variant"
    assert {"one append: convstore", "one append: raw XADD"} <= set(section["per_op_us"])


def test_refuses_remote_and_nonempty(tmp_path: Path) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.runner import is_loopback, main

    assert is_loopback("redis://127.0.0.1:6379/13")
    assert is_loopback("redis://[::1]:6379/0")
    assert is_loopback("unix:///tmp/redis.sock")
    assert not is_loopback("redis://10.1.2.3:6379/0")
    assert not is_loopback("rediss://cache.example.com:6380/0")
    # refused before any connection is attempted
    assert main(["--redis-url", "redis://10.1.2.3:6379/0", "--out", str(tmp_path)]) == 2
    # a prefix convstore would not accept is refused before anything is written
    assert (
        main(["--redis-url", REDIS_URL, "--allow-nonempty", "--namespace", "a b", "--out", "x"])
        == 2
    )


def test_rounds_run_on_a_frozen_heap_and_nested_blocks_keep_it() -> None:
    """``interleaved`` runs its rounds with the existing objects frozen (out of the
    collector's walk); a nested block does not thaw them, and the outer one thaws all."""
    import gc

    from benchmarks.common import frozen_heap, interleaved

    assert gc.get_freeze_count() == 0
    seen: list[int] = []

    def variant() -> int:
        with frozen_heap():  # nested: must not unfreeze the outer block's objects
            pass
        seen.append(gc.get_freeze_count())
        return len(seen)

    got = interleaved({"a": variant, "b": variant}, 2)
    assert sorted(got["a"] + got["b"]) == [1, 2, 3, 4]
    assert all(count > 0 for count in seen)
    assert gc.get_freeze_count() == 0


def test_floor_study_reports_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m benchmarks.floor`` on its own redis-server: every variant, a ratio each."""
    from benchmarks import floor

    assert floor.main(["--rounds", "1", "--ops", "10", "--no-pin"]) == 0
    report = json.loads(capsys.readouterr().out)
    variants = {
        "convstore append",
        "convstore plan, no driver",
        "minimal safe append",
        "every guarantee, least client work",
        "convstore script, arguments prebuilt",
        "XADD-only EVALSHA",
        "raw XADD",
    }
    assert set(report["us_per_append"]) == set(report["throughput_vs_xadd_only"]) == variants
    assert set(report["redis_cpu_vs_raw_xadd"]) == set(report["client_cpu_vs_raw_xadd"]) == variants
    assert report["throughput_vs_xadd_only"]["XADD-only EVALSHA"] == 1.0
    halt_poll = floor.HALT_POLL  # this machine's own setting, recorded with the figures
    expected = int(halt_poll.read_text()) if halt_poll.exists() else None
    assert report["guest_halt_poll_ns"] == expected
    for costs in report["us_per_append"].values():
        assert set(costs) == {"wall", "client", "server"}
        assert costs["wall"] > 0 and costs["client"] >= 0 and costs["server"] >= 0
    assert report["client_cpu_vs_raw_xadd"]["raw XADD"] in (1.0, None)
    preparation = report["client_preparation_us"]
    assert set(preparation) == {
        "in_the_loop",
        "tight_loop_without_io",
        "without_io_after_a_50us_sleep",
        "in_loop_vs_tight",
        "driver_in_the_loop",
        "plan_timed_in_the_loop",
        "plan_reply_timed_in_the_loop",
        "minimal_timed_in_the_loop",
        "minimal_tight_loop_without_io",
    }
    differences = {"in_the_loop", "in_loop_vs_tight", "driver_in_the_loop"}  # of two medians
    for what, value in preparation.items():
        if what not in differences:
            assert value > 0, what
    assert preparation["without_io_after_a_50us_sleep"] > 0


def test_read_floor_reports_every_read_on_both_heaps(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m benchmarks.read_floor`` on its own redis-server: every read, on the lean
    heap and with the ballast, a ratio against the raw read each."""
    from benchmarks import read_floor

    argv = ["--n", "60", "--rounds", "1", "--ballast", "1000", "--reads", "2", "--no-pin"]
    assert read_floor.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["messages"] == 60 and report["ballast_objects"] == 1000
    assert report["reads_per_round"] == 2
    assert report["full_collection_ms_with_ballast"] > 0
    for heap in ("lean", "ballast"):
        figures = report[heap]
        for what in ("ms_per_read", "us_per_row", "vs_raw"):
            assert set(figures[what]) == set(read_floor.READS)
            assert all(value > 0 for value in figures[what].values())
        assert figures["vs_raw"][read_floor.RAW] == 1.0


def test_read_floor_rounds_time_each_read_repeat_times() -> None:
    """``--reads N``: each round runs every variant N times in a row and reports the time
    of one read (the rounds' median), so a read of 20 rows is not one 100 µs sample."""
    from benchmarks.read_floor import rounds_of

    calls = {"a": 0, "b": 0}

    def read(name: str) -> None:
        calls[name] += 1

    got = rounds_of({n: (lambda n=n: read(n)) for n in calls}, 2, lean=False, repeat=5)
    assert calls == {"a": 15, "b": 15}  # (2 rounds + the warm-up) x 5 reads
    assert set(got) == {"a", "b"} and all(value > 0 for value in got.values())


@pytest.mark.aiecs
def test_adapter_read_reports_both_engines(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m benchmarks.adapter_read`` on its own redis-server: each engine's full
    and newest-20 reads of the same history (it checks they read the same messages), and
    each read against aiecs's full read."""
    from benchmarks import adapter_read

    assert adapter_read.main(["--n", "40", "--rounds", "1", "--no-pin"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["messages"] == 40
    for what in ("ms_per_read", "vs_aiecs_full_read"):
        assert set(report[what]) == set(adapter_read.READS)
        assert all(value > 0 for value in report[what].values())
    assert report["vs_aiecs_full_read"][adapter_read.AIECS_ALL] == 1.0


def test_least_rebuild_reads_what_convstore_reads(shared: str) -> None:
    """The read floor's least rebuild returns the messages ``history`` returns: unformatted
    (with or without the scan), or formatted, then exactly the same dicts."""
    from benchmarks.read_floor import least_rebuild
    from benchmarks.workloads import new_session

    with redis.Redis.from_url(REDIS_URL) as client:
        store = ConversationStore(client, namespace=shared)
        key = store.sessions.save(new_session("read-floor"))
        store.messages.append_many(
            key, [{"role": "user", "content": f"m{i}", "metadata": {"i": i}} for i in range(3)]
        )
        unparsed = raw_reply_client(client)  # the rows as convstore's readers get them
        assert unparsed is not None
        rows = unparsed.execute_command(
            "XRANGE", store.config.keyspace.session(key).messages, "-", "+"
        )
        history = store.messages.history(key)
    for rebuilt in (least_rebuild(rows), least_rebuild(rows, scan=True)):
        assert [(m["role"], m["content"], m["metadata"]["i"]) for m in rebuilt] == [
            (m["role"], m["content"], m["metadata"]["i"]) for m in history
        ]
        assert [m["timestamp"].isoformat() for m in rebuilt] == [m["timestamp"] for m in history]
        assert [codec.decode_message_id(m["metadata"]["message_id"]) for m in rebuilt] == [
            m["metadata"]["message_id"] for m in history
        ]
    assert least_rebuild(rows, scan=True, formatted=True) == history


def test_floor_prebuilt_calls_each_store_a_message(shared: str) -> None:
    """The floor study's prebuilt variant sends convstore's own APPEND calls: each stores
    its message, readable back as the history, so its cost is a real append's."""
    from benchmarks.floor import prepared_calls
    from benchmarks.workloads import new_session

    with redis.Redis.from_url(REDIS_URL) as client:
        store = ConversationStore(client, namespace=shared)
        key = store.sessions.save(new_session("floor-prebuilt"))
        messages = [{"role": "user", "content": f"m{i}", "metadata": {"i": i}} for i in range(3)]
        calls = prepared_calls(store, key, messages)
        replies = [client.execute_command(*call) for call in calls]
        history = store.messages.history(key)
    assert all(reply.endswith(b"+") for reply in replies)  # "<la> <entry id>+": newly stored
    assert [m["content"] for m in history] == ["m0", "m1", "m2"]
    assert [m["metadata"]["i"] for m in history] == [0, 1, 2]


def test_floor_least_full_append_stores_what_append_stores(shared: str) -> None:
    """The floor study's least-client full append is a real append: each message reads
    back as ``messages.append`` stores it (metadata, its id and entry id), its stream rows
    carry the same fields as the store's own append of the same messages (tool-call
    fields included), and what the plan refuses it refuses too."""
    from benchmarks.floor import least_full_append
    from benchmarks.workloads import new_session

    from convstore import lua
    from convstore.errors import ValidationError

    with redis.Redis.from_url(REDIS_URL) as client:
        store = ConversationStore(client, namespace=shared)
        sha = client.script_load(lua.APPEND.source)
        key = store.sessions.save(new_session("floor-least"))
        messages = [
            {"role": "user", "content": "m0", "metadata": {"i": 0}},
            {
                "role": "assistant",
                "content": "m1",
                "metadata": {"tool_calls": [{"id": "c1", "type": "function"}]},
            },
            {"role": "tool", "content": "m2", "metadata": {"tool_call_id": "c1"}},
        ]
        results = [least_full_append(client, sha, store.config, key, m) for m in messages]
        twin = store.sessions.save(new_session("floor-least-twin"))
        for message in messages:
            store.messages.append(twin, message)
        fields = [
            [
                [name for name in row[1] if name != b"d"]
                for row in client.xrange(store.config.keyspace.session(k).messages)
            ]
            for k in (key, twin)
        ]
        history = store.messages.history(key)
        entries = store.messages.entries(key)
        for bad in ({"role": "", "content": "x"}, {"role": "user", "content": 1}):
            with pytest.raises(ValidationError):
                least_full_append(client, sha, store.config, key, {**bad, "metadata": {}})
        assert store.messages.count(key) == 3
    assert all(result.created for result in results)
    assert fields[0] == fields[1] and [b"m", b"tc"] in fields[0] and [b"m", b"tr"] in fields[0]
    assert [m["content"] for m in history] == ["m0", "m1", "m2"]
    assert [m["metadata"]["message_id"] for m in history] == [r.message_id for r in results]
    assert [str(uuid.UUID(r.message_id)) for r in results] == [r.message_id for r in results]
    assert all(uuid.UUID(r.message_id).version == 4 for r in results)
    assert [e.entry_id for e in entries] == [r.entry_id for r in results]
    assert history[1]["metadata"]["tool_calls"] == [{"id": "c1", "type": "function"}]
    assert history[2]["metadata"]["tool_call_id"] == "c1"


@pytest.mark.slow
def test_compiled_floor_compiles_and_runs_both_builds(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m benchmarks.compiled`` really compiles (here one small module, to keep
    the suite short) and runs the floor study on the compiled copy and on the source."""
    from benchmarks import compiled

    argv = ["--pairs", "1", "--rounds", "1", "--ops", "10", "--no-pin"]
    assert compiled.main([*argv, "--modules", "convstore/isotime.py"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["compiled_modules"] == ["convstore.isotime"]
    (pair,) = report["pairs"]
    for build in ("source", "compiled"):
        assert set(pair[build]) == set(compiled.FIGURES)
        assert pair[build]["wall_vs_xadd_only"] > 0
        assert report["median"][build] == pair[build]
