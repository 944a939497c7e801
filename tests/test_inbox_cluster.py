"""Inbox delivery on a real 3-node Redis Cluster: the session and the inbox live in different
slots, a crash between the append and the delivery is repaired, consumers block on the
inbox's own node. The cluster is started here and stopped by pid."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis.asyncio.cluster
import redis.cluster

from conftest import SessionFactory
from convstore import AsyncConversationStore, ConversationStore
from servers import start_cluster
from test_inbox import agent_message, crash_then_repair, drain


@pytest.fixture(scope="module")
def cluster_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    cluster = start_cluster(tmp_path_factory.mktemp("inbox-cluster"), masters=3)
    try:
        yield cluster.ports[0]
    finally:
        cluster.stop()


def test_a_crash_between_append_and_delivery_is_repaired_on_a_cluster(
    cluster_port: int, make_session: SessionFactory
) -> None:
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster_port)
    store = ConversationStore(client, namespace="inbox-cluster", inboxes=True, retry=None)
    key = store.sessions.create(make_session("crash", "agent_to_agent"))
    session_slot = client.keyslot(store.config.keyspace.session(key).session)
    inbox = store.config.keyspace.inbox("agent_researcher")
    assert {client.keyslot(k) for k in inbox.all()} != {session_slot}
    assert len({client.keyslot(k) for k in inbox.all()}) == 1
    crash_then_repair(store, key)
    store.messages.append(key, agent_message(key, "ok", "mc_1", "agent_researcher", "fine"))
    assert [d.message.message_id for d in drain(store, "agent_researcher")] == ["ok"]
    client.close()


async def test_async_consumer_and_tail_on_a_cluster(
    cluster_port: int, make_session: SessionFactory
) -> None:
    client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=cluster_port)
    store = AsyncConversationStore(client, namespace="inbox-cluster-async", inboxes=True)
    key = await store.sessions.create(make_session("live", "agent_to_agent"))
    follower = store.messages.follow(key, after="0-0", wait=2)
    for i in range(3):
        await store.messages.append(key, agent_message(key, f"c{i}", "mc_1", "agent_writer", "x"))
    got = []
    async with store.inbox("agent_writer", wait=0.5) as box:
        async for delivery in box:
            got.append(delivery.message.message_id)
            assert await delivery.ack()
    assert got == ["c0", "c1", "c2"]
    tail = []
    async for item in follower:
        tail.append(item.entry_id)
        if len(tail) == 3:
            break
    await follower.aclose()
    assert len(tail) == 3
    await asyncio.sleep(0)
    await store.aclose()
