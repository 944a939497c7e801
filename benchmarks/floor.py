"""How close one append can get to an XADD-only script: the floor under issue 11's wall goal.

``python -m benchmarks.floor [--rounds 8] [--ops 400] [--no-pin]``

Three ways to store one message, interleaved on a private pinned redis-server
(``benchmarks/server.py``), one call per message, the median of the rounds:

- **convstore**: ``messages.append`` (every guarantee: damage checks, retention,
  tool-call groups, compare-and-append, indexes, TTL, retried-id detection).
- **minimal safe append**: what any append that keeps the history idempotent and the
  session's counters right must do, and nothing else. The client validates and encodes
  the message with convstore's codec and makes a uuid4; the script reads the session
  hash, looks the id up, XADDs, records the id and updates the counters. No damage
  checks, no retention, no indexes, no TTL, no compare-and-append.
- **XADD-only EVALSHA**: the goal's baseline (``return redis.call('XADD', ...)`` with a
  raw msgpack payload).

The goal asks convstore for >= 0.85x the baseline's throughput; the minimal row shows
what the unavoidable work alone leaves.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import redis

from benchmarks.common import make_messages, raw_payload
from benchmarks.server import can_pin, pinned_client, start_server
from benchmarks.workloads import new_session
from convstore import ConversationStore, codec
from convstore.plans import new_message_ids

MINIMAL = r"""
local f = redis.call('HMGET', KEYS[1], 'rev', 'n')
if not f[1] then return {-1} end
local known = redis.call('HGET', KEYS[3], ARGV[2])
if known then return known end
local id = redis.call('XADD', KEYS[2], '*', 'm', ARGV[2], 'd', ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], id)
redis.call('HSET', KEYS[1], 'lid', id, 'n', tonumber(f[2] or '0') + 1, 'la', ARGV[1])
return id
"""
XADD_ONLY = "return redis.call('XADD', KEYS[1], '*', 'd', ARGV[1])"


def measure(client: redis.Redis, rounds: int, ops: int) -> dict[str, float]:
    """Median µs per append of each variant, interleaved (the order reversed every round)."""
    store = ConversationStore(client, namespace="floor")
    msgs = make_messages(ops)
    dicts = [{"role": m.role, "content": m.content, "metadata": m.metadata} for m in msgs]
    minimal, xadd_only = client.script_load(MINIMAL), client.script_load(XADD_ONLY)
    serial = iter(range(10**9))

    def convstore() -> None:
        key = store.sessions.save(new_session(f"c{next(serial)}"))
        for message in dicts:
            store.messages.append(key, message)

    def minimal_safe() -> None:
        key = store.sessions.save(new_session(f"m{next(serial)}"))
        keys = store.config.keyspace.session(key).all()[:3]
        for m in msgs:
            now = datetime.now(UTC)
            payload = codec.encode_entry(m.role, m.content, now, dict(m.metadata))
            stored = codec.encode_message_id(new_message_ids(1)[0])
            client.execute_command("EVALSHA", minimal, 3, *keys, now.timestamp(), stored, payload)

    def baseline() -> None:
        key = f"floor:x{next(serial)}"
        for m in msgs:
            client.execute_command("EVALSHA", xadd_only, 1, key, raw_payload(m))

    variants: dict[str, Callable[[], None]] = {
        "convstore append": convstore,
        "minimal safe append": minimal_safe,
        "XADD-only EVALSHA": baseline,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds + 1):  # round 0 warms up
        for name in names if r % 2 == 0 else reversed(names):
            started = time.perf_counter()
            variants[name]()
            if r:
                times[name].append((time.perf_counter() - started) / ops * 1e6)
    for key in client.scan_iter(match="floor:*", count=1000):
        client.delete(key)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.floor")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--ops", type=int, default=400)
    p.add_argument("--no-pin", action="store_true")
    a = p.parse_args(argv)
    pin = not a.no_pin and can_pin()
    server = start_server(pin)
    if isinstance(server, str):
        raise SystemExit(f"benchmarks.floor: {server}")
    try:
        with pinned_client(pin):
            per_append = measure(redis.Redis(port=server.port), a.rounds, a.ops)
    finally:
        server.stop()
    base = per_append["XADD-only EVALSHA"]
    report = {
        "pinned": pin,
        "rounds": a.rounds,
        "ops_per_round": a.ops,
        "us_per_append": {k: round(v, 1) for k, v in per_append.items()},
        "throughput_vs_xadd_only": {k: round(base / v, 3) for k, v in per_append.items()},
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
