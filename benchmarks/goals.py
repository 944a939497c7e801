"""Issue 11's goal table, measured in the same run as W1-W9 (``python -m benchmarks``).

Each goal is a ratio against its baseline measured in the same rounds, interleaved
(A/B, B/A, ...), median of the rounds, marked met or missed; the peers are rows of the same
rounds. By default the goals run on a private ``redis-server`` pinned to core 1 with this
process pinned to core 0 (benchmarks/server.py); without a ``redis-server`` binary they
fall back to the ``--redis-url`` server under the run's prefix, unpinned, and say so.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable
from typing import Any

import redis
import redis.connection
import redis.utils

from benchmarks.common import AIECS
from benchmarks.goal_aiecs import AiecsGoalPeer, aiecs_availability
from benchmarks.goal_bench import GOAL_SIZES, Goal, GoalBench
from benchmarks.goal_peers import GOAL_PEERS, GoalPeer
from benchmarks.goal_reads import many_sessions_goal, memory_goals, read_goals
from benchmarks.goal_writes import async_goals, batch_append, one_append
from benchmarks.server import CLIENT_CORE, OwnServer, can_pin, start_server

Step = tuple[str, Callable[[], None]]


def parser_in_use() -> str:
    """Which reply parser redis-py uses here, and whether hiredis is installed."""
    parser = redis.connection.DefaultParser.__name__
    try:
        version = importlib.metadata.version("hiredis")
    except importlib.metadata.PackageNotFoundError:
        version = None
    if redis.utils.HIREDIS_AVAILABLE:
        return f"hiredis {version} ({parser})"
    if version:
        return f"pure Python ({parser}); hiredis {version} is installed but not used"
    return f"pure Python ({parser}); hiredis not installed (pip install 'convstore[hiredis]')"


def goal_peers_state(peers: dict[str, str]) -> dict[str, str]:
    """The W1-W9 peers' availability plus aiecs's (goal rows only)."""
    out = dict(peers)
    skipped = any(v.startswith("skipped") for v in peers.values())
    out[AIECS] = "skipped (--no-peers)" if skipped else aiecs_availability()
    return out


class GoalRun:
    """Builds the goal steps, runs them on the chosen server, and reports the table."""

    def __init__(
        self,
        *,
        target_url: str,
        prefix: str,
        size: str,
        pin: bool,
        own_server: bool,
        peers_state: dict[str, str],
    ) -> None:
        self.target_url, self.prefix = target_url, prefix
        self.size = GOAL_SIZES[size]
        self.want_pin, self.want_own = pin, own_server
        self.peers_state = peers_state
        self.server: OwnServer | None = None
        self.where = ""
        self.pinned = False
        self.saved_affinity: set[int] | None = None
        self.bench: GoalBench | None = None
        self.goals: list[Goal] = []
        self.load: list[list[float]] = []
        self.version: str | None = None
        self.server_side: dict[str, Any] = {}
        self.per_op: dict[str, dict[str, float]] = {}
        self.peer_drive: dict[str, str] = {}

    def steps(self) -> list[Step]:
        s = self.size
        out: list[Step] = [
            ("goals: start the goal server, pin", self.start),
            (f"goals: one append x{s.ops} (convstore, script, raw, peers)", self.add(one_append)),
            ("goals: batch append (100 per call)", self.add(batch_append)),
            (f"goals: read all {s.read_all_n:,}, newest 20 of {s.newest_n:,}", self.add(read_goals)),
            (f"goals: async {s.async_sessions} x {s.async_per} vs sync, peers", self.add(async_goals)),
            ("goals: bytes per message at " + ", ".join(f"{n:,}" for n in s.mem_ns), self.add(memory_goals)),
            (f"goals: bytes, {s.many_sessions:,} sessions x {s.many_per}", self.add(many_sessions_goal)),
            ("goals: stop the goal server", self.stop),
        ]  # fmt: skip
        return out

    def add(self, fn: Callable[[GoalBench], Goal | list[Goal]]) -> Callable[[], None]:
        def step() -> None:
            assert self.bench is not None
            got = fn(self.bench)
            self.goals += got if isinstance(got, list) else [got]

        return step

    def start(self) -> None:
        url = self.target_url
        pin = self.want_pin and can_pin()
        if self.want_own:
            started = start_server(pin)
            if isinstance(started, OwnServer):
                self.server, url = started, started.url
                self.where = f"own redis-server on port {started.port}" + (
                    ", pinned to core 1" if pin else ""
                )
            else:
                pin = False
                self.where = f"the --redis-url server, unpinned ({started})"
        else:
            pin = False
            self.where = "the --redis-url server (--goals-on-target), unpinned"
        if pin:
            self.saved_affinity = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {CLIENT_CORE})
            self.where += f"; client pinned to core {CLIENT_CORE}"
        self.pinned = pin
        self.load.append(list(os.getloadavg()))
        peers: list[GoalPeer] = []
        factories = {**GOAL_PEERS, AIECS: AiecsGoalPeer}
        if self.server is None and self.peers_state[AIECS].startswith("installed"):
            self.peers_state[AIECS] = "not run: it writes global keys, so only on the own server"
        for name, factory in factories.items():
            if not self.peers_state.get(name, "").startswith("installed"):
                continue
            try:
                peers.append(factory(url, self.prefix))
            except Exception as exc:  # noqa: BLE001 - a broken peer must not stop the run
                self.peers_state[name] = f"failed to start: {type(exc).__name__}: {exc}"
        self.bench = GoalBench(url, self.prefix, self.size, peers)

    def stop(self) -> None:
        """Close the clients, stop the own server, restore this process's cores."""
        if self.bench is not None:
            self.load.append(list(os.getloadavg()))
            self.version = self.bench.client.info("server").get("redis_version")
            self.server_side = self.bench.server_side()
            self.per_op = self.bench.per_op
            self.peer_drive = {p.name: p.async_how for p in self.bench.peers}
            self.bench.close()
            self.bench = None
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.saved_affinity is not None:
            os.sched_setaffinity(0, self.saved_affinity)
            self.saved_affinity = None

    def report(self) -> dict[str, Any]:
        """The ``goals`` section of results.json."""
        met = [g.met for g in self.goals]
        return {
            "server": self.where,
            "redis_version": self.version,
            "pinned": self.pinned,
            "reply_parser": parser_in_use(),
            "rounds": self.size.rounds,
            "load_average_start_end": self.load,
            "peers": self.peers_state,
            "peers_async_driven": self.peer_drive,
            "summary": {
                "met": met.count(True),
                "missed": met.count(False),
                "not_judged": met.count(None),
            },
            "goals": [g.as_json() for g in self.goals],
            "per_op_us": {
                k: {m: round(x, 2) for m, x in v.items()} for k, v in self.per_op.items()
            },
            "server_side": self.server_side,
        }
