"""Inbox delivery: end-to-end latency and throughput (a measurement script, not a test).

    python -m benchmarks.inbox_latency [--redis-url redis://127.0.0.1:6379/6] [--messages 10000]

1. Latency: one async consumer blocked in ``store.inbox(...)``; a producer appends one agent
   message at a time (``inboxes=True``: the append delivers it) and waits until the
   consumer has it. Latency = from just before ``messages.append`` to the consumer holding
   the typed message. Median and p99 over ``--messages`` messages.
2. Throughput: a producer appends ``--throughput-messages`` messages in ``append_many``
   batches of 100 while 4 consumers of one group read and ack them; messages per second
   from the first append to the last ack.

Everything is written under a fresh namespace ``bench-inbox-<random>`` and deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid

import redis

from convstore import (
    AgentCommunicationMessage,
    AsyncConversationStore,
    ConversationParticipant,
    ConversationSession,
    InboxSettings,
    utc_now,
)

WRITER = ConversationParticipant("agent_writer", "agent", "writer")
RESEARCHER = ConversationParticipant("agent_researcher", "agent", "researcher")


def _message(key: str, i: int) -> AgentCommunicationMessage:
    return AgentCommunicationMessage(
        "", key, "agent_writer", "agent", "writer", "agent_researcher", "agent", "researcher",
        f"message {i}: " + "x" * 180, "communication", utc_now(),
    )  # fmt: skip


async def _session(store: AsyncConversationStore, name: str) -> str:
    now = utc_now()
    return await store.sessions.create(
        ConversationSession(name, [WRITER, RESEARCHER], "agent_to_agent", now, now)
    )


async def latency(store: AsyncConversationStore, n: int) -> tuple[list[float], list[float]]:
    key = await _session(store, "latency")
    received: asyncio.Queue[float] = asyncio.Queue()

    async def consumer() -> None:
        async with store.inbox("agent_researcher", group="lat", consumer="c1") as box:
            async for delivery in box:
                received.put_nowait(time.perf_counter())
                await delivery.ack()

    task = asyncio.create_task(consumer())
    for i in range(200):  # warm up: scripts loaded, group created, connections open
        await store.messages.append(key, _message(key, i))
        await received.get()
    end_to_end, append_only = [], []
    for i in range(n):
        start = time.perf_counter()
        await store.messages.append(key, _message(key, i))
        appended = time.perf_counter()
        got = await received.get()
        end_to_end.append(got - start)
        append_only.append(appended - start)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return end_to_end, append_only


async def plain_append(url: str, namespace: str, n: int) -> list[float]:
    """The baseline: the same appends on a store without delivery, in the same run."""
    async with AsyncConversationStore.from_url(url, namespace=namespace) as store:
        key = await _session(store, "plain")
        out = []
        for i in range(n):
            start = time.perf_counter()
            await store.messages.append(key, _message(key, i))
            out.append(time.perf_counter() - start)
        return out


async def throughput(store: AsyncConversationStore, n: int, consumers: int = 4) -> float:
    key = await _session(store, "throughput")
    done = asyncio.Event()
    acked = 0

    async def consumer(name: str) -> None:
        nonlocal acked
        async with store.inbox("agent_researcher", group="tput", consumer=name, batch=64) as box:
            async for delivery in box:
                await delivery.ack()
                acked += 1
                if acked >= n:
                    done.set()

    tasks = [asyncio.create_task(consumer(f"c{i}")) for i in range(consumers)]
    await asyncio.sleep(0.2)  # the group exists and every consumer is blocked
    start = time.perf_counter()
    for first in range(0, n, 100):
        batch = [_message(key, i) for i in range(first, min(n, first + 100))]
        await store.messages.append_many(key, batch)
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return n / elapsed


def _ms(values: list[float], q: float) -> float:
    if q == 0.5:
        return statistics.median(values) * 1000
    return statistics.quantiles(values, n=100)[round(q * 100) - 1] * 1000


async def main(url: str, n: int, tn: int) -> None:
    namespace = f"bench-inbox-{uuid.uuid4().hex[:8]}"
    settings = InboxSettings(deliver=True, retention=None)  # nothing may be trimmed unread
    store = AsyncConversationStore.from_url(url, namespace=namespace, inboxes=settings)
    try:
        e2e, append = await latency(store, n)
        print(f"end-to-end latency over {n} messages (append -> blocked consumer has it):")
        print(f"  median {_ms(e2e, 0.5):.3f} ms   p99 {_ms(e2e, 0.99):.3f} ms   "
              f"max {max(e2e) * 1000:.3f} ms")  # fmt: skip
        print(f"  of which the append call (with its delivery): median {_ms(append, 0.5):.3f} ms"
              f"   p99 {_ms(append, 0.99):.3f} ms")  # fmt: skip
        plain = await plain_append(url, namespace, min(n, 5000))
        print(f"baseline, a plain append (no delivery), same run: median {_ms(plain, 0.5):.3f} ms"
              f"   p99 {_ms(plain, 0.99):.3f} ms")  # fmt: skip
        rate = await throughput(store, tn)
        print(f"throughput, 4 consumers acking, {tn} messages appended in batches of 100: "
              f"{rate:,.0f} messages/s")  # fmt: skip
    finally:
        await store.aclose()
        with redis.Redis.from_url(url) as admin:
            keys = list(admin.scan_iter(match=f"{namespace}:*", count=1000))
            for i in range(0, len(keys), 500):
                admin.delete(*keys[i : i + 500])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6"))
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--throughput-messages", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(main(args.redis_url, args.messages, args.throughput_messages))
