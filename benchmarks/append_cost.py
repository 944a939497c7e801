"""Issue 11's goal table: each goal a ratio against its baseline, measured in one run.

``python -m benchmarks.append_cost [--reps 3] [--ops 300] [--no-pin] [--out FILE]``

It starts its own ``redis-server`` on a free loopback port (no persistence), pinned with
``taskset`` to core 1 and pins itself to core 0 (``--no-pin`` to skip), so the shared
server is never touched; it is stopped by pid at the end. Every goal is measured
interleaved (A/B/A/B in one process, the order alternating per round) and the median of
``--reps`` repetitions is reported, marked met or missed. Server CPU per operation is the
server process's ``used_cpu_user + used_cpu_sys`` delta (INFO cpu) over the round, and
``INFO commandstats`` usec per call is printed beside it.

Rows: convstore (layout 2), convstore's previous APPEND script (layout 1, loaded from git
``main`` when available, "what the change bought"), an XADD-only EVALSHA script, raw XADD.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import redis
import redis.asyncio

from benchmarks.common import BATCH, make_messages, raw_decode, raw_payload
from benchmarks.workloads import new_session
from convstore import AsyncConversationStore, ConversationStore, codec
from convstore.models import ConversationSession, utc_now

XADD_ONLY = "return redis.call('XADD', KEYS[1], '*', 'd', ARGV[1])"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(pin: bool) -> tuple[subprocess.Popen[bytes], int, str]:
    port, workdir = free_port(), tempfile.mkdtemp(prefix="convstore-bench-")
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    cmd += ["--appendonly", "no", "--dir", workdir]
    if pin and shutil.which("taskset"):
        cmd = ["taskset", "-c", "1", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return proc, port, workdir


def server_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def old_lua() -> types.ModuleType | None:
    """main's lua.py (layout 1), to show what the new APPEND bought; None outside git."""
    try:
        source = subprocess.run(
            ["git", "show", "main:src/convstore/lua.py"], capture_output=True, check=True
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        return None
    if "LAYOUT_VERSION" in source:
        return None  # main already has layout 2
    module = types.ModuleType("old_lua")
    sys.modules["old_lua"] = module
    exec(compile(source, "old_lua.py", "exec"), module.__dict__)
    return module


def session(sid: str) -> ConversationSession:
    return new_session(sid)


class Bench:
    def __init__(self, url: str, ops: int) -> None:
        self.client = redis.Redis.from_url(url)
        self.url = url
        self.ops = ops
        self.store = ConversationStore(self.client, namespace="bench11")
        self.xadd_sha = self.client.script_load(XADD_ONLY)
        self.old = old_lua()
        self.old_sha = self.client.script_load(self.old.APPEND.source) if self.old else None
        self.msgs = make_messages(ops)
        self.n = 0

    def new_key(self, name: str) -> str:
        self.n += 1
        return self.store.sessions.save(session(f"{name}{self.n}"))

    # one-append variants; each returns a function appending all self.msgs once
    def conv(self) -> Callable[[], None]:
        key = self.new_key("c")
        m = self.store.messages

        def run() -> None:
            for msg in self.msgs:
                m.append(key, {"role": msg.role, "content": msg.content, "metadata": msg.metadata})

        return run

    def old_append(self) -> Callable[[], None]:
        key = self.new_key("o")
        keys, common = self.store.config.common(key)
        sha, ex = self.old_sha, self.client.execute_command

        def run() -> None:
            for msg in self.msgs:
                mid = codec.encode_message_id(str(uuid.uuid4()))
                now = utc_now()
                payload = codec.encode_entry(msg.role, msg.content, now, msg.metadata)
                ms = str(int(now.timestamp() * 1000))
                ex("EVALSHA", sha, 6, *keys.all(), *common, "0", "0", "0", mid, ms, payload)

        return run

    def xadd_script(self) -> Callable[[], None]:
        key, sha, ex = f"bench11:x{self.n}", self.xadd_sha, self.client.execute_command
        self.n += 1

        def run() -> None:
            for msg in self.msgs:
                ex("EVALSHA", sha, 1, key, raw_payload(msg))

        return run

    def raw(self) -> Callable[[], None]:
        key, ex = f"bench11:r{self.n}", self.client.execute_command
        self.n += 1

        def run() -> None:
            for msg in self.msgs:
                ex("XADD", key, "*", "d", raw_payload(msg))

        return run

    def measure(self, fn: Callable[[], None]) -> tuple[float, float, float]:
        """(wall, client CPU, server CPU) per op, in µs."""
        s0, c0, w0 = server_cpu(self.client), time.process_time(), time.perf_counter()
        fn()
        w1, c1, s1 = time.perf_counter(), time.process_time(), server_cpu(self.client)
        k = 1e6 / self.ops
        return (w1 - w0) * k, (c1 - c0) * k, (s1 - s0) * k


def interleaved(variants: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            out[name].append(variants[name]())
    return out


def med(values: list[float]) -> float:
    return statistics.median(values)


def memory_per_message(b: Bench, counts: list[int]) -> list[dict[str, Any]]:
    rows = []
    for n in counts:
        msgs = make_messages(n)
        key = b.new_key("mem")
        keys = b.store.config.keyspace.session(key)
        raw_key = f"bench11:memraw{n}"
        for start in range(0, n, BATCH):
            chunk = msgs[start : start + BATCH]
            b.store.messages.append_many(
                key, [{"role": m.role, "content": m.content, "metadata": m.metadata} for m in chunk]
            )
            pipe = b.client.pipeline(transaction=False)
            for m in chunk:
                pipe.execute_command("XADD", raw_key, "*", "d", raw_payload(m))
            pipe.execute()
        usage = sum(
            b.client.memory_usage(k, samples=0) or 0
            for k in (keys.messages, keys.ids, keys.session)
        )
        raw = b.client.memory_usage(raw_key, samples=0) or 0
        row = {"n": n, "convstore": usage / n, "raw": raw / n, "ratio": usage / raw}
        if b.old_sha:  # the same messages in layout 1, through the previous APPEND script
            old = b.new_key("memold")
            okeys, common = b.store.config.common(old)
            for start in range(0, n, BATCH):
                args: list[Any] = [*common, "0", "0", "0"]
                for m in msgs[start : start + BATCH]:
                    mid = codec.encode_message_id(str(uuid.uuid4()))
                    now = utc_now()
                    ms = str(int(now.timestamp() * 1000))
                    args += (mid, ms, codec.encode_entry(m.role, m.content, now, m.metadata))
                b.client.execute_command("EVALSHA", b.old_sha, 6, *okeys.all(), *args)
            old_usage = sum(
                b.client.memory_usage(k, samples=0) or 0
                for k in (okeys.messages, okeys.ids, okeys.session)
            )
            row["convstore_layout1"] = old_usage / n
            b.client.delete(okeys.messages, okeys.ids)
        rows.append(row)
        b.client.delete(keys.messages, keys.ids, raw_key)
    return rows


def memory_many_sessions(b: Bench, sessions: int, per: int) -> dict[str, Any]:
    msgs = [
        {"role": m.role, "content": m.content, "metadata": m.metadata} for m in make_messages(per)
    ]
    raws = make_messages(per)
    conv_keys, raw_keys = [], []
    for i in range(sessions):
        key = b.store.sessions.save(session(f"many{i}"))
        b.store.messages.append_many(key, msgs)
        sk = b.store.config.keyspace.session(key)
        conv_keys += [sk.messages, sk.ids]
        raw_keys.append(f"bench11:many{i}")
        pipe = b.client.pipeline(transaction=False)
        for m in raws:
            pipe.execute_command("XADD", raw_keys[-1], "*", "d", raw_payload(m))
        pipe.execute()

    def total(keys: list[str]) -> int:
        pipe = b.client.pipeline(transaction=False)
        for k in keys:
            pipe.memory_usage(k, samples=0)
        return sum(v or 0 for v in pipe.execute())

    conv, raw = total(conv_keys), total(raw_keys)
    count = sessions * per
    return {"sessions": sessions, "per": per, "convstore": conv / count, "raw": raw / count,
            "ratio": conv / raw, "note": "stream + ids per message (the session hash is per session)"}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.append_cost")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--ops", type=int, default=300)
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--sessions", type=int, default=10000)
    p.add_argument("--out", default="")
    a = p.parse_args(argv)
    pin = not a.no_pin and shutil.which("taskset") is not None
    if pin:
        os.sched_setaffinity(0, {0})
    proc, port, workdir = start_server(pin)
    try:
        report = run(f"redis://127.0.0.1:{port}/0", a, pin)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    text = json.dumps(report, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    print(text)
    return 0


def goal(name: str, ratio: float, target: str, ok: bool, **extra: Any) -> dict[str, Any]:
    return {"goal": name, "ratio": round(ratio, 3), "target": target, "met": ok, **extra}


def run(url: str, a: argparse.Namespace, pin: bool) -> dict[str, Any]:
    b = Bench(url, a.ops)
    load = os.getloadavg()
    variants: dict[str, Callable[[], Any]] = {
        "convstore": lambda: b.measure(b.conv()),
        "xadd_script": lambda: b.measure(b.xadd_script()),
        "raw_xadd": lambda: b.measure(b.raw()),
    }
    if b.old_sha:
        variants["convstore_layout1"] = lambda: b.measure(b.old_append())
    b.client.config_resetstat()
    got = interleaved(variants, 2 * a.reps)
    stats = b.client.info("commandstats")
    per = {k: [med([x[i] for x in v]) for i in range(3)] for k, v in got.items()}
    conv, script, raw = per["convstore"], per["xadd_script"], per["raw_xadd"]
    goals = [
        goal("one append, wall (throughput vs XADD-only EVALSHA)", script[0] / conv[0], ">= 0.85",
             script[0] / conv[0] >= 0.85),
        goal("one append, Redis process CPU vs raw XADD", conv[2] / raw[2], "<= 2", conv[2] / raw[2] <= 2),
        goal("one append, client CPU vs raw XADD", conv[1] / raw[1], "<= 2", conv[1] / raw[1] <= 2),
    ]  # fmt: skip
    reads = read_goals(b, a.reps)
    goals += reads
    goals += batch_and_async(b, a.reps)
    sizes = [int(x) for x in a.sizes.split(",") if x]
    mem = memory_per_message(b, sizes)
    many = memory_many_sessions(b, a.sessions, 10) if a.sessions else None
    for row in mem:
        goals.append(goal(f"bytes per message, {row['n']} in one session", row["ratio"], "<= 1.15",
                          row["ratio"] <= 1.15))  # fmt: skip
    if many:
        goals.append(goal(f"bytes per message, {many['sessions']} sessions x 10", many["ratio"],
                          "<= 1.15", many["ratio"] <= 1.15))  # fmt: skip
    return {
        "load_average_at_start": load,
        "load_average_at_end": os.getloadavg(),
        "pinned": pin,
        "reps": a.reps,
        "ops_per_round": a.ops,
        "per_op_us_wall_client_server": {k: [round(x, 2) for x in v] for k, v in per.items()},
        "commandstats_usec_per_call": {
            k: v.get("usec_per_call")
            for k, v in stats.items()
            if k in ("cmdstat_evalsha", "cmdstat_xadd")
        },
        "goals": goals,
        "memory": mem,
        "memory_many_sessions": many,
        "python": sys.version.split()[0],
        "redis": b.client.info("server")["redis_version"],
    }


def per_call(fn: Callable[[], Any], k: int) -> float:
    t = time.perf_counter()
    for _ in range(k):
        fn()
    return (time.perf_counter() - t) / k


def readers(
    b: Bench, key: str, raw_key: str, last: int | None
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(convstore read, raw read + msgpack) of everything or of the newest ``last``."""
    m, ex = b.store.messages, b.client.execute_command
    if last is None:
        return (
            lambda: m.history(key),
            lambda: [raw_decode(f[b"d"]) for _, f in ex("XRANGE", raw_key, "-", "+")],
        )
    return (
        lambda: m.history(key, last),
        lambda: [
            raw_decode(f[b"d"])
            for _, f in reversed(ex("XREVRANGE", raw_key, "+", "-", "COUNT", last))
        ],
    )


def read_goals(b: Bench, reps: int) -> list[dict[str, Any]]:
    out = []
    for n, last, target in ((5000, None, 1.3), (100000, 20, 1.5)):
        key = b.new_key("read")
        raw_key = f"bench11:read{n}"
        msgs = make_messages(n)
        for start in range(0, n, 1000):
            chunk = msgs[start : start + 1000]
            b.store.messages.append_many(
                key, [{"role": m.role, "content": m.content, "metadata": m.metadata} for m in chunk]
            )
            pipe = b.client.pipeline(transaction=False)
            for m in chunk:
                pipe.execute_command("XADD", raw_key, "*", "d", raw_payload(m))
            pipe.execute()
        conv, raw = readers(b, key, raw_key, last)
        k = 3 if last is None else 200
        got = interleaved(
            {"conv": partial(per_call, conv, k), "raw": partial(per_call, raw, k)}, 2 * reps
        )
        ratio = med(got["conv"]) / med(got["raw"])
        what = f"read all {n}" if last is None else f"newest {last} of {n}"
        out.append(goal(what, ratio, f"<= {target}", ratio <= target,
                        convstore_ms=round(med(got["conv"]) * 1e3, 3), raw_ms=round(med(got["raw"]) * 1e3, 3)))  # fmt: skip
        b.client.delete(b.store.config.keyspace.session(key).messages, raw_key)
    return out


def batch_and_async(b: Bench, reps: int) -> list[dict[str, Any]]:
    msgs = [
        {"role": m.role, "content": m.content, "metadata": m.metadata} for m in make_messages(BATCH)
    ]
    raws = make_messages(BATCH)
    ex_pipe = b.client.pipeline

    def conv_batch() -> float:
        key = b.new_key("batch")
        t = time.perf_counter()
        for _ in range(10):
            b.store.messages.append_many(key, msgs)
        return 10 * BATCH / (time.perf_counter() - t)

    def raw_batch() -> float:
        key = f"bench11:batch{b.n}"
        b.n += 1
        t = time.perf_counter()
        for _ in range(10):
            pipe = ex_pipe(transaction=False)
            for m in raws:
                pipe.execute_command("XADD", key, "*", "d", raw_payload(m))
            pipe.execute()
        return 10 * BATCH / (time.perf_counter() - t)

    got = interleaved({"conv": conv_batch, "raw": raw_batch}, 2 * reps)
    batch_ratio = med(got["conv"]) / med(got["raw"])

    async def async_rate() -> float:
        client = redis.asyncio.Redis.from_url(b.url)
        store = AsyncConversationStore(client, namespace="bench11")
        keys = [await store.sessions.save(session(f"a{b.n}-{i}")) for i in range(64)]
        b.n += 1

        async def one(key: str) -> None:
            for m in msgs:
                await store.messages.append(key, m)

        t = time.perf_counter()
        await asyncio.gather(*(one(k) for k in keys))
        rate = 64 * BATCH / (time.perf_counter() - t)
        await client.aclose()
        return rate

    def sync_rate() -> float:
        keys = [b.new_key("s") for _ in range(64)]
        t = time.perf_counter()
        for k in keys:
            for m in msgs:
                b.store.messages.append(k, m)
        return 64 * BATCH / (time.perf_counter() - t)

    got2 = interleaved({"async": lambda: asyncio.run(async_rate()), "sync": sync_rate}, 2 * reps)
    per_run = [x / y for x, y in zip(got2["async"], got2["sync"], strict=True)]
    return [
        goal("batch append (100 per call) vs pipelined raw", batch_ratio, ">= 0.7", batch_ratio >= 0.7),
        goal("async 64 sessions x 100 vs sync", med(per_run), ">= 3 every run", min(per_run) >= 3,
             runs=[round(x, 2) for x in per_run]),
    ]  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
