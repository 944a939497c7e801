"""convstore's ContextEngine adapter against aiecs's own ContextEngine, reading the same
history: what an aiecs user sees when they swap the engine.

``python -m benchmarks.adapter_read [--n 5000] [--rounds 8] [--no-pin]``

On a private pinned redis-server (``benchmarks/server.py``), one history of ``n`` messages
for each engine (aiecs's built as its own JSON list, as the goal table's aiecs peer builds
it; convstore's with ``append_many``), then interleaved rounds of:

- ``get_conversation_history`` of everything, through each engine;
- the newest 20 through each (aiecs's limit reads the *oldest* N of its list, so the
  newest 20 need everything read and the tail kept, as in the goal table);
- convstore's own ``messages.history`` and ``messages.read`` of the same session, for scale.

Each figure is the median ms of the rounds; ``vs_aiecs`` is each read over aiecs's full
read. Needs aiecs 2.2.0's published wheel (``benchmarks/aiecs_wheel.py`` downloads it once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio

from benchmarks.common import LAST_N, interleaved, make_messages, timed
from benchmarks.goal_aiecs import LIMIT, AiecsGoalPeer
from benchmarks.server import can_pin, on_own_server
from convstore import AsyncConversationStore
from convstore.adapters.contextengine import ContextEngineStore

AIECS_ALL, ADAPTER_ALL = "aiecs ContextEngine: all", "convstore adapter: all"
READS = (
    AIECS_ALL,
    ADAPTER_ALL,
    f"aiecs ContextEngine: newest {LAST_N}",
    f"convstore adapter: newest {LAST_N}",
    "convstore messages.history: all",
    "convstore messages.read: all",
)


def measure(client: redis.Redis, n: int, rounds: int) -> dict[str, float]:
    """Median ms per read of each of :data:`READS`."""
    port = client.connection_pool.connection_kwargs["port"]
    url = f"redis://127.0.0.1:{port}/0"
    msgs = make_messages(n)
    aiecs = AiecsGoalPeer(url, "adapter-read")
    runner = asyncio.Runner()
    store = AsyncConversationStore(redis.asyncio.Redis.from_url(url), namespace="adapter-read")
    engine = ContextEngineStore(store, conversation_limit=None)
    try:
        aiecs.prepare("s")
        aiecs.build("s", msgs)
        runner.run(engine.create_session("s", "user_1"))
        for start in range(0, n, 1000):
            batch = [m.as_dict() for m in msgs[start : start + 1000]]
            runner.run(store.messages.append_many("s", batch))
        ours = runner.run(engine.get_conversation_history("s", 0))
        theirs = aiecs.read_all("s")
        if [m["content"] for m in ours] != [m.content for m in theirs]:  # its own objects
            raise RuntimeError("the two engines do not read the same messages")

        def run(read: Callable[[], Awaitable[Any]]) -> Callable[[], float]:
            async def discard() -> None:  # Runner.run of Python 3.11 reprs the finished task
                await read()  # (restoring SIGINT): with its result, a whole list subclass

            return lambda: timed(lambda: runner.run(discard())) * 1000

        reads: dict[str, Callable[[], float]] = {
            READS[0]: lambda: timed(lambda: aiecs.read_all("s")) * 1000,
            READS[1]: run(lambda: engine.get_conversation_history("s", 0)),
            READS[2]: lambda: timed(lambda: aiecs.newest("s", LAST_N)) * 1000,
            READS[3]: run(lambda: engine.get_conversation_history("s", LAST_N)),
            READS[4]: run(lambda: store.messages.history("s")),
            READS[5]: run(lambda: store.messages.read("s")),
        }
        got = interleaved(reads, rounds + 1)  # round 0 warms up
        return {name: statistics.median(values[1:]) for name, values in got.items()}
    finally:  # the keys go with the private server
        runner.run(store.aclose())
        runner.close()
        aiecs.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.adapter_read")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--no-pin", action="store_true")
    a = p.parse_args(argv)
    if a.n > LIMIT:
        p.error(f"--n at most {LIMIT}")
    pin = not a.no_pin and can_pin()
    ms = on_own_server(pin, "benchmarks.adapter_read", lambda c: measure(c, a.n, a.rounds))
    report = {
        "pinned": pin,
        "messages": a.n,
        "rounds": a.rounds,
        "ms_per_read": {k: round(v, 3) for k, v in ms.items()},
        "vs_aiecs_full_read": {k: round(v / ms[AIECS_ALL], 3) for k, v in ms.items()},
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
