"""What every goal measurement shares: sizes, the goal record, clients, and the sampler.

A *sample* is one round of one variant: wall time, this process's CPU time and the Redis
process's CPU time (INFO cpu) over the round, per operation, plus the round's own
``INFO commandstats`` delta, so the server-side cost of each variant is reported apart
from the others without resetting the server's counters.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
import redis.asyncio

from benchmarks.baselines import RawStream
from benchmarks.common import Msg
from benchmarks.goal_peers import GoalPeer
from benchmarks.server import commandstats, server_cpu, stats_delta
from benchmarks.workloads import new_session
from convstore import AsyncConversationStore, ConversationStore

XADD_ONLY = "return redis.call('XADD', KEYS[1], '*', 'd', ARGV[1])"
OPTIONS: dict[str, Any] = {"socket_timeout": 60.0, "socket_connect_timeout": 5.0}


@dataclass(frozen=True, slots=True)
class GoalSize:
    """How big each goal measurement is; the issue's figures are the ``full`` ones."""

    ops: int  # one-call appends per round
    rounds: int  # interleaved rounds (A/B/A/B, order alternating); the median is reported
    read_all_n: int
    newest_n: int
    mem_ns: tuple[int, ...]
    many_sessions: int
    many_per: int
    async_sessions: int
    async_per: int
    batch_calls: int  # append_many calls of BATCH per round


GOAL_SIZES: dict[str, GoalSize] = {
    "tiny": GoalSize(40, 3, 500, 1_000, (200, 1_000), 50, 10, 64, 4, 2),
    "small": GoalSize(200, 4, 5_000, 10_000, (1_000, 10_000), 1_000, 10, 64, 20, 5),
    "full": GoalSize(300, 6, 5_000, 100_000, (1_000, 10_000, 100_000), 10_000, 10, 64, 100, 10),
}


@dataclass
class Goal:
    """One row of the issue's goal table, judged on this run's ratio."""

    what: str
    ratio: float | None  # convstore relative to the baseline, as ``op`` reads it
    op: str  # ">=" (throughput ratio) or "<=" (cost ratio)
    target: float
    baseline: str
    convstore: float | None
    baseline_value: float | None
    unit: str
    met: bool | None = None
    runs: list[float] = field(default_factory=list)  # the per-round ratios
    peers: dict[str, dict[str, Any]] = field(default_factory=dict)
    note: str = ""

    def __post_init__(self) -> None:
        if self.met is None and self.ratio is not None:
            self.met = self.ratio >= self.target if self.op == ">=" else self.ratio <= self.target

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Sample:
    wall: float  # µs per op
    client: float
    server: float


def med(values: list[float]) -> float:
    return statistics.median(values)


class GoalBench:
    """The clients and stores of the goal run, and the per-variant server counters."""

    def __init__(self, url: str, prefix: str, size: GoalSize, peers: list[GoalPeer]) -> None:
        self.url, self.prefix, self.size, self.peers = url, prefix, size, peers
        self.client = redis.Redis.from_url(url, **OPTIONS)
        self.store = ConversationStore(self.client, namespace=prefix)
        self.raw = RawStream(self.client, f"{prefix}:goal")
        self.xadd_sha: str = self.client.script_load(XADD_ONLY)
        self.stats: dict[str, dict[str, list[int]]] = {}  # variant -> command -> [calls, usec]
        self.ops: dict[str, int] = {}  # variant -> operations measured
        self.per_op: dict[str, dict[str, float]] = {}  # variant -> wall/client/server µs
        self.n = 0

    def fresh(self, name: str) -> str:
        """A new name, unique in this run."""
        self.n += 1
        return f"{name}{self.n}"

    def session(self, name: str) -> str:
        """A new convstore session (untimed); returns its key."""
        return self.store.sessions.save(new_session(self.fresh(name)))

    def conv_keys(self, key: str) -> tuple[str, str, str]:
        keys = self.store.config.keyspace.session(key)
        return keys.messages, keys.ids, keys.session

    def astore(self) -> AsyncConversationStore:
        """The asyncio store as a user builds it, ``from_url`` (with the ``hiredis`` extra
        installed, its connections pack commands with hiredis)."""
        return AsyncConversationStore.from_url(
            self.url,
            namespace=self.prefix,
            socket_timeout=OPTIONS["socket_timeout"],
            socket_connect_timeout=OPTIONS["socket_connect_timeout"],
        )

    def sample(self, variant: str, fn: Callable[[], Any], ops: int) -> Sample:
        """Run ``fn`` once (``ops`` operations) and record its costs under ``variant``."""
        before = commandstats(self.client)
        s0 = server_cpu(self.client)
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        w1, c1 = time.perf_counter(), time.process_time()
        s1 = server_cpu(self.client)
        self.count(variant, stats_delta(before, commandstats(self.client)), ops)
        k = 1e6 / ops
        return Sample((w1 - w0) * k, (c1 - c0) * k, (s1 - s0) * k)

    def timed(self, variant: str, fn: Callable[[], Any], ops: int) -> float:
        """Seconds for ``fn``, its commandstats delta recorded under ``variant``."""
        before = commandstats(self.client)
        started = time.perf_counter()
        fn()
        seconds = time.perf_counter() - started
        self.count(variant, stats_delta(before, commandstats(self.client)), ops)
        return seconds

    def count(self, variant: str, delta: dict[str, tuple[int, int]], ops: int) -> None:
        table = self.stats.setdefault(variant, {})
        for command, (calls, usec) in delta.items():
            row = table.setdefault(command, [0, 0])
            row[0] += calls
            row[1] += usec
        self.ops[variant] = self.ops.get(variant, 0) + ops

    def server_side(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{variant: {command: {calls_per_op, usec_per_call, usec_per_op}}}``."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for variant, table in self.stats.items():
            ops = max(1, self.ops.get(variant, 1))
            out[variant] = {
                command: {
                    "calls_per_op": round(calls / ops, 3),
                    "usec_per_call": round(usec / calls, 2) if calls else 0.0,
                    "usec_per_op": round(usec / ops, 2),
                }
                for command, (calls, usec) in sorted(table.items(), key=lambda kv: -kv[1][1])
            }
        return out

    def close(self) -> None:
        for peer in self.peers:
            peer.close()
        self.client.close()


def as_dicts(msgs: list[Msg]) -> list[dict[str, Any]]:
    return [m.as_dict() for m in msgs]
