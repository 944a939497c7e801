"""Does a live tail slow the store down? p99 of 1,000 concurrent async appends, with and
without a follower tailing the same session, interleaved; the ratio is the figure (issue 12:
goal <= 1.10). Speed is measured here, never asserted in tests.

    python -m benchmarks.follower_overhead --redis-url redis://127.0.0.1:6379/13 [--rounds 15]

Writes under a fresh namespace and deletes it at the end; loopback servers only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime

import redis

from benchmarks.runner import is_loopback
from convstore import AsyncConversationStore, ConversationParticipant, ConversationSession
from convstore.follow import AsyncFollower


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


async def _append_round(store: AsyncConversationStore, key: str, n: int) -> float:
    async def one(i: int) -> float:
        start = time.perf_counter()
        await store.messages.append(key, {"role": "user", "content": f"m{i}"})
        return time.perf_counter() - start

    return _p99(list(await asyncio.gather(*(one(i) for i in range(n)))))


async def measure(url: str, rounds: int, n: int) -> tuple[list[float], list[float]]:
    namespace = f"bench-follow-{uuid.uuid4().hex[:10]}"
    store = AsyncConversationStore.from_url(url, namespace=namespace)
    now = datetime.now(UTC)
    people = [
        ConversationParticipant("u", "user"),
        ConversationParticipant("mc", "master_controller"),
    ]
    try:
        key = await store.sessions.create(
            ConversationSession("follow", people, "user_to_mc", now, now)
        )
        await _append_round(store, key, 200)  # warm up: scripts loaded, pool filled
        without: list[float] = []
        beside: list[float] = []
        for round_ in range(rounds):
            for with_follower in (round_ % 2 == 0, round_ % 2 == 1):  # alternate the order
                if not with_follower:
                    without.append(await _append_round(store, key, n))
                    continue
                follower = store.messages.follow(key)

                async def tail(follower: AsyncFollower) -> None:
                    async for _item in follower:
                        pass

                task = asyncio.create_task(tail(follower))
                await asyncio.sleep(0.02)
                beside.append(await _append_round(store, key, n))
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        return without, beside
    finally:
        with redis.Redis.from_url(url) as admin:
            keys = list(admin.scan_iter(match=f"{namespace}:*"))
            if keys:
                admin.delete(*keys)
        await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--appends", type=int, default=1000)
    args = parser.parse_args()
    if not is_loopback(args.redis_url):
        raise SystemExit(f"refusing a non-loopback server: {args.redis_url}")
    without, beside = asyncio.run(measure(args.redis_url, args.rounds, args.appends))
    ratio = min(beside) / min(without)
    print(f"p99 of {args.appends} concurrent appends, best of {args.rounds} rounds each:")
    print(
        f"  without a follower {min(without) * 1000:.1f} ms, with one {min(beside) * 1000:.1f} ms"
    )
    print(f"  ratio {ratio:.3f} (goal <= 1.10: {'met' if ratio <= 1.10 else 'missed'})")


if __name__ == "__main__":
    main()
