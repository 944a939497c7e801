"""The operations commands on every backend: in process on fakeredis, the installed entry
point (a subprocess with ``--url``) on Redis 7.0 and Valkey 9."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis

from convstore import ConversationStore
from convstore.cli import EXIT_FAILED, EXIT_PROBLEMS, EXIT_USAGE
from convstore.errors import CodecError
from convstore.plans import epoch_micros
from servers import free_port
from test_layout import write_layout_1


def _fill(store: ConversationStore, make_session: Any) -> list[str]:
    keys = []
    for i, kind in enumerate(("user_to_mc", "mc_to_agent", "agent_to_agent")):
        key = store.sessions.create(make_session(f"s{i}", kind, topic=f"t{i}"))
        store.messages.append_many(
            key, [{"role": "user", "content": f"{kind} {n}"} for n in range(i + 2)]
        )
        keys.append(key)
    return keys


def test_sessions_ls_show_history_stats(
    cli: Any, store: ConversationStore, make_session: Any
) -> None:
    keys = _fill(store, make_session)
    listed = cli("sessions", "ls", "--json")
    assert listed.code == 0, listed.err
    assert [s["key"] for s in listed.json()["sessions"]] == list(reversed(keys))
    text = cli("sessions", "ls")
    assert text.code == 0 and keys[0] in text.out and "user_to_mc" in text.out
    only = cli("sessions", "ls", "--type", "mc_to_agent", "--json").json()["sessions"]
    assert [s["key"] for s in only] == [keys[1]]
    by_person = cli("sessions", "ls", "--participant", "user_1", "--json").json()["sessions"]
    assert {s["key"] for s in by_person} == {keys[0]}
    assert cli("sessions", "ls", "--idle-since", "1h", "--json").json()["sessions"] == []
    page = cli("sessions", "ls", "--limit", "2", "--json").json()
    assert len(page["sessions"]) == 2 and page["cursor"]
    rest = cli("sessions", "ls", "--limit", "2", "--cursor", page["cursor"], "--json").json()
    assert [s["key"] for s in rest["sessions"]] == [keys[0]] and rest["cursor"] is None

    shown = cli("sessions", "show", keys[2], "--json").json()
    assert shown["messages"] == 4 and shown["session_type"] == "agent_to_agent"
    assert shown["metadata"] == {"topic": "t2"} and shown["revision"] == 1
    assert shown["ttl_ms"] is None and shown["retention"]["max_messages"] is None
    assert (shown["size_bytes"] is None) == (cli.url is None)  # MEMORY USAGE on real servers
    assert "messages: 4" in cli("sessions", "show", keys[2]).out

    newest = cli("history", keys[2], "--limit", "2", "--json").json()["messages"]
    assert [m["content"] for m in newest] == ["agent_to_agent 2", "agent_to_agent 3"]
    assert all("message_id" in m["metadata"] for m in newest)
    everything = cli("history", keys[2], "--all", "--json").json()["messages"]
    assert len(everything) == 4
    assert cli("history", keys[2], "--since", "2000-01-01T00:00:00", "--json").json()["messages"]
    assert (
        cli("history", keys[2], "--until", "2000-01-01T00:00:00", "--json").json()["messages"] == []
    )
    assert "user: agent_to_agent 3" in cli("history", keys[2]).out

    stats = cli("stats", "--json").json()
    assert stats["sessions"] == 3 and stats["messages"] == 2 + 3 + 4
    assert stats["by_type"]["mc_to_agent"] == {"sessions": 1, "messages": 3}
    assert (stats["bytes"] is None) == (cli.url is None)
    assert "sessions: 3" in cli("stats").out


def test_unknown_session_and_bad_input_fail_in_one_line(cli: Any, store: ConversationStore) -> None:
    for args in (("sessions", "show", "nope"), ("history", "nope")):
        result = cli(*args)
        assert result.code == EXIT_FAILED
        assert result.err.count("\n") == 1 and "SessionNotFound" in result.err
    bad = cli("history", "x", "--since", "yesterday-ish")
    assert bad.code == EXIT_USAGE and "ValidationError" in bad.err
    assert cli("sessions", "ls", "--limit", "0").code == EXIT_USAGE


def test_unreachable_server_and_bad_url(cli: Any) -> None:
    dead = cli("stats", url=f"redis://u:s3cret@127.0.0.1:{free_port()}/0")
    assert dead.code == EXIT_FAILED and "StoreUnavailable" in dead.err
    assert dead.err.count("\n") == 1 and "s3cret" not in dead.err
    malformed = cli("doctor", url="http://127.0.0.1:1/0")
    assert malformed.code == EXIT_USAGE and malformed.err.startswith("convstore: error:")


def test_doctor_reports_the_server_and_finds_a_planted_inconsistency(
    cli: Any, store: ConversationStore, sync_client: redis.Redis, make_session: Any
) -> None:
    keys = _fill(store, make_session)
    healthy = cli("doctor", "--json")
    assert healthy.code == 0, healthy.out + healthy.err
    report = healthy.json()
    assert report["ok"] and report["sessions_checked"] == 3 and report["problems"] == []
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["lua"]["status"] == checks["streams"]["status"] == "ok"
    assert {"server", "aof", "maxmemory", "connection", "cluster"} <= checks.keys()
    # planted: a counter that disagrees with the history, and a record under a foreign key
    sync_client.hset(store.config.keyspace.session(keys[0]).session, "n", 99)
    record = sync_client.hget(store.config.keyspace.session(keys[1]).session, "rec")
    stray = store.config.keyspace.session("stray")
    sync_client.hset(stray.session, mapping={"rec": record, "rev": 1, "la": 1, "n": 0})
    sync_client.zadd(store.config.keyspace.index_all, {"stray": 1})
    sick = cli("doctor", "--json")
    assert sick.code == EXIT_PROBLEMS
    problems = sick.json()["problems"]
    assert any("counter says 99, the history holds 2" in p for p in problems), problems
    assert any(p.startswith("stray: the record is stored under the wrong key") for p in problems)
    assert len(problems) == 2
    assert "FAIL sessions" in cli("doctor").out


def test_export_import_export_is_identical(
    cli: Any, store: ConversationStore, sync_client: redis.Redis, make_session: Any, tmp_path: Path
) -> None:
    keys = _fill(store, make_session)
    store.messages.append(
        keys[0], {"role": "tool", "content": "", "metadata": {"raw": b"\x00\xff"}}
    )
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    exported = cli("export", "--output", str(first), "--json")
    assert exported.code == 0, exported.err
    assert exported.json() == {"sessions": 3, "messages": 10}
    other = store.namespace + "-copy"
    try:
        imported = cli("import", str(first), "--json", namespace=other)
        assert imported.code == 0, imported.err
        assert imported.json()["messages_added"] == 10
        again = cli("import", str(first), "--json", namespace=other).json()
        assert again["messages_added"] == 0 and again["messages_already_present"] == 10
        assert cli("export", "--output", str(second), namespace=other).code == 0
        assert first.read_bytes() == second.read_bytes()
        one = cli("export", "--session", keys[1], namespace=other)
        assert one.code == 0 and one.out.count('"type":"session"') == 1
        assert "exported 1 session(s), 3 message(s)" in one.err
    finally:
        for key in sync_client.scan_iter(match=f"{other}:*"):
            sync_client.delete(key)
    missing = cli("export", "--session", "nope")
    assert missing.code == EXIT_FAILED and "SessionNotFound" in missing.err
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json\n")
    assert cli("import", str(garbage)).code == EXIT_FAILED


def _legacy_record(session_id: str, created: str) -> bytes:
    """A session record as a 1.0-schema writer stored it: legacy participant form, no
    participant metadata, naive ISO timestamps, no ``metadata`` key."""
    return msgpack.packb(
        {
            "v": 1,
            "k": "session",
            "session_id": session_id,
            "session_type": "user_to_mc",
            "participants": [
                {"id": "u1", "type": "user"},
                {"id": "mc", "type": "master_controller"},
            ],
            "created_at": created,
            "last_activity": created,
            "version": "1.0",
        },
        use_bin_type=True,
    )


def test_migrate_upgrades_1_0_records_resumably_and_a_second_run_changes_nothing(
    cli: Any, store: ConversationStore, sync_client: redis.Redis, make_session: Any
) -> None:
    current = store.sessions.create(make_session("fresh"))
    ks = store.config.keyspace
    for i in range(5):
        key = f"old{i}"
        sync_client.hset(
            ks.session(key).session, "rec", _legacy_record(key, f"2024-01-0{i + 1}T10:00:00")
        )
        sync_client.zadd(ks.index_all, {key: 1})
    # index entries without a session (expired ones look so); 130 of them also make the real
    # server keep the index as a skiplist, where ZSCAN honours COUNT (a listpack is one page)
    sync_client.zadd(ks.index_all, {f"ghost{i}": 0 for i in range(130)})
    # a ContextEngine layout-1 session: marked ce=session, user taken from the record
    ce_key = store.sessions.create(make_session("ce"))
    sync_client.hset(ks.session(ce_key).session, "ce", "session")
    # a session whose stream entries are in layout 1 (field = message id)
    streamed = store.sessions.create(make_session("streamed"))
    old_ids = write_layout_1(sync_client, store, streamed, 3)
    dry = cli("migrate", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert dry.json()["changed"] == {
        "session-record": 5,
        "contextengine-layout": 1,
        "stream-layout": 6,  # the layout-1 stream, and the five 1.0 records get marked
    }
    with pytest.raises(CodecError):  # today's reader cannot read a 1.0 record
        store.sessions.get("old0")
    partial = cli("migrate", "--batch", "2", "--max-keys", "2", "--json").json()
    assert not partial["complete"] and partial["cursor"] != "0"
    rest = cli("migrate", "--cursor", partial["cursor"], "--json").json()
    assert rest["complete"] and rest["problems"] == []
    total = partial["changed"]["session-record"] + rest["changed"]["session-record"]
    assert (
        total == 5
        and partial["changed"]["contextengine-layout"] + rest["changed"]["contextengine-layout"]
        == 1
        and partial["changed"]["stream-layout"] + rest["changed"]["stream-layout"] == 6
    )
    assert sync_client.hget(ks.session(streamed).session, "lv") == b"3"
    stored = store.messages.history(streamed)
    assert [m["metadata"]["message_id"] for m in stored] == old_ids
    [(_, fields)] = sync_client.xrange(ks.session(streamed).messages, "1001-0", "1001-0")
    assert fields[b"tc"] == b"old1"  # the tool-call group field, written by the migration
    upgraded = store.sessions.get("old3")
    assert upgraded is not None and upgraded.participants[0].participant_id == "u1"
    assert upgraded.created_at.isoformat() == "2024-01-04T10:00:00+00:00"
    assert upgraded.participants[0].metadata == {}
    assert (
        sync_client.hget(ks.session("old3").session, "la")
        == str(epoch_micros(upgraded.created_at)).encode()
    )
    assert sync_client.hget(ks.session(ce_key).session, "ce:uid") == b"user_1"
    store.messages.append("old3", {"role": "user", "content": "still works"})
    before = {
        k: sync_client.hgetall(k)
        for k in sync_client.scan_iter(match=f"{store.namespace}:*")
        if sync_client.type(k) == b"hash"
    }
    second = cli("migrate", "--json").json()
    assert second["changed"] == {
        "session-record": 0,
        "contextengine-layout": 0,
        "stream-layout": 0,
    }
    assert second["keys_seen"] >= 138 and second["complete"]
    after = {k: sync_client.hgetall(k) for k in before}
    assert after == before
    assert store.sessions.get(current) is not None
    assert cli("migrate", "--dry-run").out.splitlines()[-1] == "complete"
