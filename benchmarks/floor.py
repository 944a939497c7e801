"""How close one append can get to an XADD-only script and to a raw XADD: the floor under
issue 11's wall and Redis CPU goals.

``python -m benchmarks.floor [--rounds 8] [--ops 400] [--no-pin]``

Seven ways to store one message, interleaved on a private pinned redis-server
(``benchmarks/server.py``), one call per message, the median of the rounds:

- **convstore**: ``messages.append`` (every guarantee: damage checks, retention,
  tool-call groups, compare-and-append, indexes, TTL, retried-id detection).
- **convstore plan, no driver**: the same append plan stepped by hand, one EVALSHA per
  step: everything but the driver (retries, error translation, metrics and logs), so the
  two rows split the client's share between the plan and the driver.
- **minimal safe append**: what any append that keeps the history idempotent and the
  session's counters right must do, and nothing else. The client validates and encodes
  the message with convstore's codec and makes a uuid4; the script reads the session
  hash, looks the id up, XADDs, records the id and updates the counters. No damage
  checks, no retention, no indexes, no TTL, no compare-and-append.
- **every guarantee, least client work**: convstore's own APPEND script, its arguments
  built in the loop by the append plan's own per-message preparation
  (``plans.append.prepare_message``: every check and encoding, the record size, a uuid4)
  and the reply read into an ``AppendResult``, with no plan generator, driver or operation
  around it: the fastest a full append can be with convstore's guarantees, and so the
  floor under the wall goal for this design.
- **convstore script, arguments prebuilt**: convstore's own APPEND script and arguments,
  built by its plan before the round starts, so the round only sends them: the server's
  whole share of an append with almost nothing left on the client.
- **XADD-only EVALSHA**: the wall goal's baseline (``return redis.call('XADD', ...)`` with
  a raw msgpack payload).
- **raw XADD**: the CPU goals' baseline (``XADD key * d <msgpack>``).

Each variant reports wall time, client CPU (this process) and Redis CPU (the server
process's user + system time, ``INFO cpu``) per append. ``client_preparation_us`` sets
what the client's preparation of an append (everything but the send: validation,
encoding, ids, the plan and driver) costs inside the loop (convstore minus the prebuilt
variant) beside what the same work costs in a tight loop without I/O (the plan stepped
with a canned reply), and without I/O but after a 50 µs sleep each: work done right
after a blocking wait runs on cold caches. It also splits that cost:
``driver_in_the_loop`` is convstore minus the plan stepped by hand; ``plan_timed_in_the_loop``
and ``plan_reply_timed_in_the_loop`` time, inside the hand-stepped loop, the plan up to its
script call and the plan's handling of the reply; ``minimal_timed_in_the_loop`` and
``minimal_tight_loop_without_io`` the minimal safe append's own preparation in its loop and
without I/O. The goals ask convstore for
>= 0.85x the XADD-only script's throughput and <= 2x raw XADD's Redis CPU; the minimal
row shows what the unavoidable work alone leaves.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from benchmarks.baselines import RawStream
from benchmarks.common import Msg, make_messages, raw_payload
from benchmarks.server import can_pin, on_own_server, server_cpu
from benchmarks.workloads import new_session
from convstore import AppendResult, ConversationStore, codec, lua
from convstore.plans import Run, StoreConfig, new_message_ids
from convstore.plans.append import append_messages, prepare_message

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
TIGHT = "preparation, tight loop"
TIMED = "preparation, timed in the loop"
#: A KVM guest's idle polling window (Linux's cpuidle-haltpoll driver): 0 means an idle vCPU
#: halts at once and leaves the VM, so every blocking round trip pays a VM exit and a wake-up.
HALT_POLL = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")


def prepared_calls(store: ConversationStore, key: str, dicts: list[dict[str, Any]]) -> list[Any]:
    """The EVALSHA argument lists convstore's plan builds for appending ``dicts`` one by one
    to ``key`` (each with a message id of its own, so each stores a message)."""
    sha = store.client.script_load(lua.APPEND.source)
    calls = []
    for message in dicts:
        plan = append_messages(store.config, key, [message])
        step = next(plan)
        plan.close()
        calls.append(("EVALSHA", sha, len(step.keys), *step.keys, *step.args))
    return calls


def minimal_arguments(message: Msg) -> tuple[float, bytes, bytes]:
    """The minimal safe append's client work: (time, stored message id, payload)."""
    now = datetime.now(UTC)
    payload = codec.encode_entry(message.role, message.content, now, dict(message.metadata))
    return now.timestamp(), codec.encode_message_id(new_message_ids(1)[0]), payload


def least_full_append(
    client: redis.Redis, sha: str, config: StoreConfig, key: str, message: dict[str, Any]
) -> AppendResult:
    """One message appended with convstore's own APPEND script and every check its append
    makes on the client (``plans.append.prepare_message``, the plan's own per-message
    preparation), then the reply read into an ``AppendResult``: the least client work a
    full append needs, without the plan's generator, the driver or the operation."""
    message_id, generated, stored_id, at, payload = prepare_message(config, key, message)
    inline, ttl, max_messages, max_age = config.constants
    reply = client.execute_command(
        "EVALSHA",
        sha,
        3,
        *config.keyspace.session(key).encoded[:3],
        f"{inline}0{1 if generated else 0} {config.now()} {ttl} {max_messages} {max_age} *",
        key,
        stored_id,
        at,
        payload,
    )
    if type(reply) is not bytes:
        raise RuntimeError(f"APPEND replied {reply!r}")
    entry = reply.decode("ascii").split(" ")[1]
    return AppendResult(message_id, entry[:-1], entry[-1] == "+")


def preparation_costs(
    store: ConversationStore, msgs: list[Msg], dicts: list[dict[str, Any]]
) -> dict[str, float]:
    """µs per append of the client's side without I/O (the append plan stepped with a
    canned reply), median of 5 passes over ``dicts``: one step after another ("warm"),
    and each step after a 50 µs sleep ("after_sleep"), which idles the core as a blocking
    round trip does, but with no socket and no redis-py in between; and the minimal safe
    append's arguments built one after another ("minimal_warm")."""
    reply = b"1700000000000 1700000000000-0+"

    def step(message: dict[str, Any]) -> int:
        started = time.perf_counter_ns()
        plan = append_messages(store.config, "floor:tight", [message])
        next(plan)
        try:
            plan.send(reply)
        except StopIteration:
            pass
        return time.perf_counter_ns() - started

    def one_pass(sleep: bool) -> float:
        total = 0
        for message in dicts:
            if sleep:
                time.sleep(50e-6)
            total += step(message)
        return total / len(dicts) / 1000

    def minimal_pass() -> float:
        started = time.perf_counter_ns()
        for message in msgs:
            minimal_arguments(message)
        return (time.perf_counter_ns() - started) / len(msgs) / 1000

    return {
        "warm": statistics.median(one_pass(False) for _ in range(5)),
        "after_sleep": statistics.median(one_pass(True) for _ in range(5)),
        "minimal_warm": statistics.median(minimal_pass() for _ in range(5)),
    }


def measure(client: redis.Redis, rounds: int, ops: int) -> dict[str, dict[str, float]]:
    """Median µs per append of each variant (wall, client CPU, Redis CPU), interleaved (the
    order reversed every round)."""
    store = ConversationStore(client, namespace="floor")
    msgs = make_messages(ops)
    dicts = [{"role": m.role, "content": m.content, "metadata": m.metadata} for m in msgs]
    minimal, xadd_only = client.script_load(MINIMAL), client.script_load(XADD_ONLY)
    append_sha = client.script_load(lua.APPEND.source)
    serial = iter(range(10**9))
    ready: dict[str, list[Any]] = {}  # the prebuilt variant's calls, made before its round

    def make_ready() -> None:
        key = store.sessions.save(new_session(f"p{next(serial)}"))
        ready["calls"] = prepared_calls(store, key, dicts)

    def prebuilt() -> None:
        for call in ready["calls"]:
            client.execute_command(*call)

    def convstore() -> None:
        key = store.sessions.save(new_session(f"c{next(serial)}"))
        for message in dicts:
            store.messages.append(key, message)

    # µs per append spent preparing (and, for the plan, reading the reply) inside the loop,
    # timed around those steps alone, one figure per round (the first is the warm-up's)
    timed: dict[str, list[float]] = {"plan": [], "reply": [], "minimal": []}

    def plan_by_hand() -> None:
        key = store.sessions.save(new_session(f"h{next(serial)}"))
        preparing = reading = 0
        for message in dicts:
            t0 = time.perf_counter_ns()
            plan = append_messages(store.config, key, [message])
            step = next(plan)
            t1 = time.perf_counter_ns()
            if not isinstance(step, Run):
                raise RuntimeError(f"the append plan asked for {step!r}")
            reply = client.execute_command(
                "EVALSHA", append_sha, len(step.keys), *step.keys, *step.args
            )
            t2 = time.perf_counter_ns()
            try:
                step = plan.send(reply)
            except StopIteration:
                pass
            else:
                raise RuntimeError(f"the append plan asked for a second step: {step!r}")
            preparing += t1 - t0
            reading += time.perf_counter_ns() - t2
        timed["plan"].append(preparing / len(dicts) / 1000)
        timed["reply"].append(reading / len(dicts) / 1000)

    def minimal_safe() -> None:
        key = store.sessions.save(new_session(f"m{next(serial)}"))
        keys = store.config.keyspace.session(key).all()[:3]
        preparing = 0
        for m in msgs:
            t0 = time.perf_counter_ns()
            arguments = minimal_arguments(m)
            preparing += time.perf_counter_ns() - t0
            client.execute_command("EVALSHA", minimal, 3, *keys, *arguments)
        timed["minimal"].append(preparing / len(msgs) / 1000)

    def least_full() -> None:
        key = store.sessions.save(new_session(f"l{next(serial)}"))
        for message in dicts:
            least_full_append(client, append_sha, store.config, key, message)

    def baseline() -> None:
        key = f"floor:x{next(serial)}"
        for m in msgs:
            client.execute_command("EVALSHA", xadd_only, 1, key, raw_payload(m))

    raw = RawStream(client, "floor:raw")

    def raw_xadd() -> None:
        session = f"r{next(serial)}"
        for m in msgs:
            raw.append(session, m)

    variants: dict[str, Callable[[], None]] = {
        "convstore append": convstore,
        "convstore plan, no driver": plan_by_hand,
        "minimal safe append": minimal_safe,
        "every guarantee, least client work": least_full,
        "convstore script, arguments prebuilt": prebuilt,
        "XADD-only EVALSHA": baseline,
        "raw XADD": raw_xadd,
    }
    costs: dict[str, dict[str, list[float]]] = {
        name: {"wall": [], "client": [], "server": []} for name in variants
    }
    names = list(variants)
    for r in range(rounds + 1):  # round 0 warms up
        for name in names if r % 2 == 0 else reversed(names):
            if variants[name] is prebuilt:
                make_ready()
            s0, c0, w0 = server_cpu(client), time.process_time(), time.perf_counter()
            variants[name]()
            w1, c1, s1 = time.perf_counter(), time.process_time(), server_cpu(client)
            if r:
                for what, value in (("wall", w1 - w0), ("client", c1 - c0), ("server", s1 - s0)):
                    costs[name][what].append(value / ops * 1e6)
    for key in client.scan_iter(match="floor:*", count=1000):
        client.delete(key)
    out = {
        name: {what: statistics.median(values) for what, values in by.items()}
        for name, by in costs.items()
    }
    out[TIGHT] = preparation_costs(store, msgs, dicts)
    out[TIMED] = {what: statistics.median(values[1:]) for what, values in timed.items()}
    return out


def guest_halt_poll_ns() -> int | None:
    """The guest's halt-polling window in ns, or None where the driver is not loaded."""
    try:
        return int(HALT_POLL.read_text())
    except (OSError, ValueError):
        return None


def _ratio(value: float, base: float) -> float | None:
    """``value / base``; None when the base is below the clock's resolution (tiny runs)."""
    return round(value / base, 2) if base > 0 else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.floor")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--ops", type=int, default=400)
    p.add_argument("--no-pin", action="store_true")
    a = p.parse_args(argv)
    pin = not a.no_pin and can_pin()
    per_append = on_own_server(
        pin, "benchmarks.floor", lambda client: measure(client, a.rounds, a.ops)
    )
    tight, timed = per_append.pop(TIGHT), per_append.pop(TIMED)
    script, raw = per_append["XADD-only EVALSHA"], per_append["raw XADD"]
    convstore = per_append["convstore append"]["client"]
    in_loop = convstore - per_append["convstore script, arguments prebuilt"]["client"]
    driver = convstore - per_append["convstore plan, no driver"]["client"]
    report = {
        "pinned": pin,
        "guest_halt_poll_ns": guest_halt_poll_ns(),
        "rounds": a.rounds,
        "ops_per_round": a.ops,
        "us_per_append": {k: {w: round(x, 1) for w, x in v.items()} for k, v in per_append.items()},
        "throughput_vs_xadd_only": {
            k: round(script["wall"] / v["wall"], 3) for k, v in per_append.items()
        },
        "redis_cpu_vs_raw_xadd": {
            k: _ratio(v["server"], raw["server"]) for k, v in per_append.items()
        },
        "client_cpu_vs_raw_xadd": {
            k: _ratio(v["client"], raw["client"]) for k, v in per_append.items()
        },
        "client_preparation_us": {
            "in_the_loop": round(in_loop, 1),
            "tight_loop_without_io": round(tight["warm"], 2),
            "without_io_after_a_50us_sleep": round(tight["after_sleep"], 2),
            "in_loop_vs_tight": _ratio(in_loop, tight["warm"]),
            "driver_in_the_loop": round(driver, 1),
            "plan_timed_in_the_loop": round(timed["plan"], 2),
            "plan_reply_timed_in_the_loop": round(timed["reply"], 2),
            "minimal_timed_in_the_loop": round(timed["minimal"], 2),
            "minimal_tight_loop_without_io": round(tight["minimal_warm"], 2),
        },
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
