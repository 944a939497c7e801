"""The write goals: one append (wall, Redis CPU, client CPU), batch append, async vs sync.

Every round of every variant appends fresh messages to a fresh session, and the variants
of one goal run interleaved in the same rounds, the order alternating.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from benchmarks.common import BATCH, interleaved, make_messages, raw_payload
from benchmarks.goal_bench import Goal, GoalBench, Sample, as_dicts, med
from benchmarks.goal_peers import GoalPeer
from benchmarks.server import commandstats, stats_delta
from benchmarks.workloads import new_session

CONV, SCRIPT, RAW = "convstore", "XADD-only EVALSHA", "raw XADD"


def _peer_facts(values: dict[str, float], ours: float, higher_is_better: bool) -> dict[str, Any]:
    """Each peer's figure and how many times better convstore is (> 1 = convstore ahead)."""
    return {
        name: {
            "value": round(v, 2),
            "convstore_vs_peer": round((ours / v) if higher_is_better else (v / ours), 3),
        }
        for name, v in values.items()
        if v and ours
    }


def one_append(b: GoalBench) -> list[Goal]:
    """Goals 1-3: one ``messages.append`` per call against an XADD-only script and raw XADD."""
    ops, ex = b.size.ops, b.client.execute_command
    msgs = make_messages(ops)
    dicts = as_dicts(msgs)

    def conv() -> Sample:
        key, append = b.session("one"), b.store.messages.append
        return b.sample(f"one append: {CONV}", lambda: [append(key, d) for d in dicts], ops)

    def script() -> Sample:
        key, sha = b.raw.key(b.fresh("script")), b.xadd_sha
        return b.sample(
            f"one append: {SCRIPT}",
            lambda: [ex("EVALSHA", sha, 1, key, raw_payload(m)) for m in msgs],
            ops,
        )

    def raw() -> Sample:
        session = b.fresh("raw")
        return b.sample(f"one append: {RAW}", lambda: [b.raw.append(session, m) for m in msgs], ops)

    variants: dict[str, Callable[[], Sample]] = {CONV: conv, SCRIPT: script, RAW: raw}
    for peer in b.peers:

        def peer_round(p: GoalPeer = peer) -> Sample:
            session = b.fresh("one")
            p.prepare(session)
            return b.sample(f"one append: {p.name}", lambda: p.append_round(session, msgs), ops)

        variants[peer.name] = peer_round
    for fn in variants.values():  # warm-up: scripts loaded, connections open, code paths hot
        fn()
    got = interleaved(variants, b.size.rounds)
    per = {
        name: {
            "wall": med([s.wall for s in v]),
            "client": med([s.client for s in v]),
            "server": med([s.server for s in v]),
        }
        for name, v in got.items()
    }
    b.per_op.update({f"one append: {k}": v for k, v in per.items()})
    c, s, r = per[CONV], per[SCRIPT], per[RAW]
    peers = [p.name for p in b.peers]

    def cpu_goal(side: str, what: str, note: str = "") -> Goal:
        """CPU per append on one side (``Sample.client`` or ``.server``) vs raw XADD."""
        return Goal(
            f"one append, {what} (vs raw XADD)",
            c[side] / r[side],
            "<=",
            2.0,
            RAW,
            c[side],
            r[side],
            "µs/msg",
            runs=[
                getattr(x, side) / getattr(y, side)
                for x, y in zip(got[CONV], got[RAW], strict=True)
                if getattr(y, side)
            ],
            peers=_peer_facts({p: per[p][side] for p in peers}, c[side], False),
            note=note,
        )

    return [
        Goal(
            f"one append, wall (throughput vs {SCRIPT})",
            s["wall"] / c["wall"],
            ">=",
            0.85,
            SCRIPT,
            1e6 / c["wall"],
            1e6 / s["wall"],
            "msg/s",
            runs=[x.wall / y.wall for x, y in zip(got[SCRIPT], got[CONV], strict=True)],
            peers=_peer_facts({p: 1e6 / per[p]["wall"] for p in peers}, 1e6 / c["wall"], True),
            note=f"raw XADD {1e6 / r['wall']:,.0f} msg/s in the same rounds",
        ),
        cpu_goal("server", "Redis process CPU", note=f"{SCRIPT}: {s['server']:.1f} µs/msg"),
        cpu_goal("client", "client CPU"),
    ]


def batch_append(b: GoalBench) -> Goal:
    """Goal: ``append_many`` of BATCH per call against raw XADD pipelined BATCH deep."""
    calls = b.size.batch_calls
    msgs = make_messages(BATCH * calls)
    dicts = as_dicts(msgs)
    total = len(msgs)

    def conv() -> float:
        key, many = b.session("batch"), b.store.messages.append_many
        chunks = [dicts[i : i + BATCH] for i in range(0, total, BATCH)]
        return total / b.timed(f"batch: {CONV}", lambda: [many(key, c) for c in chunks], total)

    def raw() -> float:
        session = b.fresh("batch")
        return total / b.timed(
            "batch: raw pipelined XADD", lambda: b.raw.append_pipelined(session, msgs), total
        )

    variants: dict[str, Callable[[], float]] = {CONV: conv, "raw": raw}
    for peer in b.peers:
        if peer.append_batch(b.fresh("warm"), msgs[:BATCH]):  # a peer with a batch API
            variants[peer.name] = lambda p=peer: (
                total
                / b.timed(f"batch: {p.name}", lambda: p.append_batch(b.fresh("batch"), msgs), total)
            )
    conv(), raw()  # warm-up
    got = interleaved(variants, b.size.rounds)
    ours = med(got[CONV])
    peers = {name: med(v) for name, v in got.items() if name not in (CONV, "raw")}
    facts = _peer_facts(peers, ours, True)
    for peer in b.peers:
        facts.setdefault(peer.name, {"value": None, "note": "n/a: no batch append API"})
    return Goal(
        f"batch append ({BATCH} per call, vs raw XADD pipelined {BATCH} deep)",
        ours / med(got["raw"]),
        ">=",
        0.7,
        "raw pipelined XADD",
        ours,
        med(got["raw"]),
        "msg/s",
        runs=[x / y for x, y in zip(got[CONV], got["raw"], strict=True)],
        peers=facts,
    )


def async_goals(b: GoalBench) -> list[Goal]:
    """64 sessions x 100 appended by 64 tasks over one async client, against the sync store
    doing the same appends one after another, and against each peer driven the same way."""
    n_sessions, per = b.size.async_sessions, b.size.async_per
    msgs = make_messages(per)
    dicts = as_dicts(msgs)
    total = n_sessions * per
    runner = asyncio.Runner()
    astore = b.astore()

    async def conv_async() -> None:
        keys = [await astore.sessions.save(_session(b, "as")) for _ in range(n_sessions)]

        async def one(key: str) -> None:
            for d in dicts:
                await astore.messages.append(key, d)

        async def go() -> None:
            await asyncio.gather(*(one(k) for k in keys))

        seconds = await _atimed(b, f"async {n_sessions} tasks: {CONV}", go, total)
        rates["async"].append(total / seconds)

    def conv_sync() -> None:
        keys = [b.session("ss") for _ in range(n_sessions)]
        append = b.store.messages.append

        def go() -> None:
            for k in keys:
                for d in dicts:
                    append(k, d)

        rates["sync"].append(total / b.timed(f"sync, one after another: {CONV}", go, total))

    rates: dict[str, list[float]] = {"async": [], "sync": []}
    lost: dict[str, str] = {}  # peers that dropped messages (and so are not a valid rate)
    variants: dict[str, Callable[[], Any]] = {
        "async": lambda: runner.run(conv_async()),
        "sync": conv_sync,
    }
    for peer in b.peers:
        rates[peer.name] = []
        runner.run(peer.aopen())

        async def apeer_round(p: GoalPeer = peer) -> None:
            sessions = [b.fresh("pa") for _ in range(n_sessions)]
            await p.aprepare(sessions)
            go = lambda: p.aappend_all(sessions, msgs)  # noqa: E731
            seconds = await _atimed(b, f"async {n_sessions} tasks: {p.name}", go, total)
            rates[p.name].append(total / seconds)
            kept = p.stored(sessions)
            if kept != total:
                lost[p.name] = f"only {kept:,} of {total:,} messages reached Redis"

        variants[peer.name] = lambda f=apeer_round: runner.run(f())
    try:
        for fn in variants.values():  # warm-up (connections, scripts, the thread pool)
            fn()
        for v in rates.values():
            v.clear()
        interleaved(variants, b.size.rounds)
        for peer in b.peers:
            runner.run(peer.aclose())
        runner.run(astore.aclose())
    finally:
        runner.close()
    per_round = [x / y for x, y in zip(rates["async"], rates["sync"], strict=True)]
    ours = med(rates["async"])
    peer_rates = {p.name: med(rates[p.name]) for p in b.peers if p.name not in lost}
    facts = _peer_facts(peer_rates, ours, True)
    for p in b.peers:
        facts.setdefault(p.name, {"value": None})["driven"] = p.async_how
        if p.name in lost:
            facts[p.name]["note"] = f"failed: {lost[p.name]} (not a valid rate)"
    label = f"async, {n_sessions} sessions x {per}"
    goals = [
        Goal(
            f"{label} (vs sync, every round)",
            min(per_round),
            ">=",
            3.0,
            "sync store, one append after another",
            ours,
            med(rates["sync"]),
            "msg/s",
            runs=per_round,
            note=f"median of the rounds {med(per_round):.2f}x; the goal needs every round",
        )
    ]
    if peer_rates:
        fastest = max(peer_rates, key=lambda k: peer_rates[k])
        goals.append(
            Goal(
                f"{label} (vs the fastest peer driven the same way)",
                ours / peer_rates[fastest],
                ">=",
                2.0,
                fastest,
                ours,
                peer_rates[fastest],
                "msg/s",
                runs=[x / y for x, y in zip(rates["async"], rates[fastest], strict=True)],
                peers=facts,
            )
        )
    else:
        goals.append(
            Goal(
                f"{label} (vs the fastest peer driven the same way)",
                None,
                ">=",
                2.0,
                "no peer with a valid rate",
                ours,
                None,
                "msg/s",
                peers=facts,
                note="no peer installed (the bench extra) or every peer dropped messages",
            )
        )
    return goals


def _session(b: GoalBench, name: str) -> Any:
    return new_session(b.fresh(name))


async def _atimed(b: GoalBench, variant: str, go: Callable[[], Any], ops: int) -> float:
    """Seconds for ``await go()``; the commandstats delta (sync client) recorded too."""
    before = commandstats(b.client)
    started = asyncio.get_running_loop().time()
    await go()
    seconds = asyncio.get_running_loop().time() - started
    b.count(variant, stats_delta(before, commandstats(b.client)), ops)
    return seconds
