"""The read and memory goals: read all, newest 20, bytes per message.

The histories are built untimed (convstore with ``append_many``, the raw stream pipelined,
the peers pipelined with their own serializer's values), then the reads run interleaved.
Bytes are ``MEMORY USAGE key SAMPLES 0`` summed over what each store keeps per session.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from benchmarks.common import LAST_N, interleaved, make_messages, raw_payload
from benchmarks.goal_bench import Goal, GoalBench, as_dicts, med
from benchmarks.goal_writes import CONV

RAW_READ = "raw XRANGE + msgpack.unpackb"
RAW_NEWEST = f"raw XREVRANGE COUNT {LAST_N} + msgpack.unpackb"
RAW_STREAM = "raw stream (one msgpack field per entry)"
TYPED = "convstore typed"


def _build(b: GoalBench, n: int, peers: bool) -> tuple[str, str, dict[str, str]]:
    """A convstore session, a raw stream and (``peers``) each peer's list, all of ``n``."""
    msgs = make_messages(n)
    key, raw = b.session("hist"), b.fresh("hist")
    for start in range(0, n, 1000):
        b.store.messages.append_many(key, as_dicts(msgs[start : start + 1000]))
    b.raw.append_pipelined(raw, msgs)
    names = {}
    if peers:
        for peer in b.peers:
            names[peer.name] = b.fresh("hist")
            peer.build(names[peer.name], msgs)
    return key, raw, names


def _drop(b: GoalBench, key: str, raw: str, names: dict[str, str]) -> None:
    b.client.delete(*b.conv_keys(key), b.raw.key(raw))
    for peer in b.peers:
        if peer.name in names:
            peer.client.delete(peer.key(names[peer.name]))


def _per_call(b: GoalBench, variant: str, fn: Callable[[], Any], calls: int) -> float:
    def go() -> None:
        for _ in range(calls):
            fn()

    return b.timed(variant, go, calls) / calls * 1e3  # ms per call


def read_goals(b: GoalBench) -> list[Goal]:
    """Read all N (vs XRANGE + unpackb) and newest 20 of N (vs XREVRANGE COUNT 20), each
    as typed values (``messages.read``) and as ContextEngine dicts (``messages.history``)."""
    return [*_read_goal(b, b.size.read_all_n, None), *_read_goal(b, b.size.newest_n, LAST_N)]


def _read_goal(b: GoalBench, n: int, last: int | None) -> list[Goal]:
    history, read = b.store.messages.history, b.store.messages.read
    raw_read, raw_last = b.raw.read_all, b.raw.last
    key, raw, names = _build(b, n, peers=True)
    what = f"read all {n:,}" if last is None else f"newest {last} of {n:,}"
    ours_calls = max(1, 15_000 // n) if last is None else 200
    peer_calls = max(1, 5_000 // n)
    variants: dict[str, Callable[[], float]] = {
        CONV: lambda: _per_call(b, f"{what}: {CONV}", lambda: history(key, last), ours_calls),
        TYPED: lambda: _per_call(b, f"{what}: {TYPED}", lambda: read(key, last), ours_calls),
        "raw": lambda: _per_call(
            b,
            f"{what}: raw",
            (lambda: raw_read(raw)) if last is None else (lambda: raw_last(raw, last)),
            ours_calls,
        ),
    }
    for peer in b.peers:
        fn = (
            (lambda p=peer: p.read_all(names[p.name]))
            if last is None
            else (lambda p=peer: p.newest(names[p.name], LAST_N))
        )
        variants[peer.name] = lambda p=peer, f=fn: _per_call(b, f"{what}: {p.name}", f, peer_calls)
    variants[CONV](), variants[TYPED](), variants["raw"]()  # warm-up
    got = interleaved(variants, b.size.rounds)
    base = med(got["raw"])
    goals = []
    for variant, form in ((TYPED, "typed values, messages.read"), (CONV, "dicts, history")):
        ours = med(got[variant])
        peers = {
            p.name: {
                "value": round(med(got[p.name]), 3),
                "convstore_vs_peer": round(med(got[p.name]) / ours, 3),
                **({} if last is None else {"note": "no newest-N API: reads all, keeps the tail"}),
            }
            for p in b.peers
        }
        goals.append(
            Goal(
                f"{what}, {form} (vs {RAW_READ if last is None else RAW_NEWEST})",
                ours / base,
                "<=",
                1.3 if last is None else 1.5,
                RAW_READ if last is None else RAW_NEWEST,
                ours,
                base,
                "ms",
                runs=[x / y for x, y in zip(got[variant], got["raw"], strict=True)],
                peers=peers,
            )
        )
    _drop(b, key, raw, names)
    return goals


def _usage(b: GoalBench, keys: list[str]) -> int:
    pipe = b.client.pipeline(transaction=False)
    for k in keys:
        pipe.execute_command("MEMORY", "USAGE", k, "SAMPLES", 0)
    return sum(int(v or 0) for v in pipe.execute())


def _bytes_goal(what: str, conv: float, raw: float, peers: dict[str, float], note: str) -> Goal:
    return Goal(
        f"bytes per message, {what} (vs {RAW_STREAM})",
        conv / raw,
        "<=",
        1.15,
        RAW_STREAM,
        conv,
        raw,
        "B/msg",
        peers={
            name: {"value": round(v, 1), "convstore_vs_peer": round(v / conv, 3)}
            for name, v in peers.items()
        },
        note=note,
    )


def memory_goals(b: GoalBench) -> list[Goal]:
    """Bytes per message at each N in one session (stream + ids hash + session hash)."""
    out = []
    for n in b.size.mem_ns:
        key, raw, names = _build(b, n, peers=True)
        conv = _usage(b, list(b.conv_keys(key))) / n
        raw_b = _usage(b, [b.raw.key(raw)]) / n
        peers = {p.name: p.bytes_of([names[p.name]]) / n for p in b.peers}
        out.append(
            _bytes_goal(
                f"{n:,} in one session", conv, raw_b, peers, "stream + ids hash + session hash"
            )
        )
        _drop(b, key, raw, names)
    return out


def many_sessions_goal(b: GoalBench) -> Goal:
    """Bytes per message over many short sessions (stream + ids; the session hash apart)."""
    sessions, per = b.size.many_sessions, b.size.many_per
    msgs = make_messages(per)
    dicts = as_dicts(msgs)
    conv_keys: list[str] = []
    hashes: list[str] = []
    raws: list[str] = []
    peer_names = [b.fresh("many") for _ in range(sessions)]
    started = time.perf_counter()
    for _ in range(sessions):
        key = b.session("many")
        b.store.messages.append_many(key, dicts)
        stream, ids, session = b.conv_keys(key)
        conv_keys += [stream, ids]
        hashes.append(session)
        raws.append(b.fresh("many"))
    pipe = b.client.pipeline(transaction=False)
    for i, raw in enumerate(raws):
        for m in msgs:
            pipe.execute_command("XADD", b.raw.key(raw), "*", "d", raw_payload(m))
        if i % 100 == 99:
            pipe.execute()
    pipe.execute()
    for peer in b.peers:
        for name in peer_names:
            peer.build(name, msgs)
    count = sessions * per
    conv, raw_b = _usage(b, conv_keys) / count, _usage(b, [b.raw.key(r) for r in raws]) / count
    session_hash = _usage(b, hashes) / sessions
    peers = {p.name: p.bytes_of(peer_names) / count for p in b.peers}
    goal = _bytes_goal(
        f"{sessions:,} sessions x {per}",
        conv,
        raw_b,
        peers,
        f"stream + ids hash; the session hash adds {session_hash:,.0f} B per session "
        f"({session_hash / per:,.0f} B/msg at {per} per session); "
        f"built in {time.perf_counter() - started:.0f} s",
    )
    _delete(b.client, [*conv_keys, *hashes, *(b.raw.key(r) for r in raws)])
    for peer in b.peers:
        _delete(peer.client, [peer.key(n) for n in peer_names])
    return goal


def _delete(client: Any, keys: list[str]) -> None:
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
