"""A real 3-node Redis Cluster on loopback: every script stays in one slot, indexes follow.

The cluster is started here (redis-server processes on free loopback ports) and stopped by
pid afterwards. Without a redis-server binary the test fails in CI and is skipped elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster

from conftest import SessionFactory
from convstore import AsyncConversationStore, ConfigurationError, ConversationStore
from convstore.embedded_server import valkey_binary
from servers import REQUIRE_REDIS, start_cluster


@pytest.fixture(scope="module", params=["redis", "valkey"])
def cluster_port(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    binary = "redis-server"
    if request.param == "valkey":
        try:
            binary = valkey_binary()
        except ConfigurationError as exc:
            if REQUIRE_REDIS:
                pytest.fail(f"valkey-server is needed for the cluster test: {exc}", pytrace=False)
            pytest.skip(f"valkey-server not installed: {exc}")
    cluster = start_cluster(tmp_path_factory.mktemp("cluster"), masters=3, binary=binary)
    try:
        yield cluster.ports[0]
    finally:
        cluster.stop()


def test_cluster_store_round_trip(cluster_port: int, make_session: SessionFactory) -> None:
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster_port)
    store = ConversationStore(client, namespace="cluster-test")
    assert store.config.cluster
    keys = []
    for i in range(6):
        key = store.sessions.save(make_session(f"s{{{i}}}:x", "mc_to_agent", roles=(f"r{i}",)))
        store.messages.append_many(key, [{"role": "user", "content": f"{i}-{j}"} for j in range(5)])
        keys.append(key)
    # the sessions hash to several slots, and each session's keys share one
    slots = {client.keyslot(store.config.keyspace.session(k).session) for k in keys}
    assert len(slots) > 1
    for key in keys:
        assert {client.keyslot(name) for name in store.config.keyspace.session(key).all()} == {
            client.keyslot(store.config.keyspace.session(key).session)
        }
    store.messages.append(keys[2], {"role": "user", "content": "newest"})
    listed = store.sessions.list(participant_id="mc_1", session_type="mc_to_agent", limit=3)
    assert listed.items[0].generate_session_key() == keys[2]  # the follow-up index update ran
    assert [m["content"] for m in store.messages.history(keys[2], limit=2)] == ["2-4", "newest"]
    for key in keys:
        assert store.sessions.delete(key)
    assert store.sessions.list().items == []
    assert list(client.scan_iter(match="cluster-test:*", target_nodes="all")) == []
    client.close()


async def test_async_cluster_store(cluster_port: int, make_session: SessionFactory) -> None:
    client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=cluster_port)
    store = AsyncConversationStore(client, namespace="cluster-async")
    key = await store.sessions.save(make_session("async one"))
    await store.messages.append(key, {"role": "user", "content": "hello"})
    assert await store.messages.count(key) == 1
    assert [s.session_id for s in (await store.sessions.list()).items] == ["async one"]
    assert await store.sessions.delete(key)
    await client.aclose()


async def test_server_info_sees_cluster_mode(
    cluster_port: int, request: pytest.FixtureRequest
) -> None:
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster_port)
    info = ConversationStore(client, namespace="cluster-info").server_info()
    assert (
        info.cluster
        and info.mode == "cluster"
        and info.name == request.node.callspec.params["cluster_port"]
    )
    client.close()
    aclient = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=cluster_port)
    assert await AsyncConversationStore(aclient, namespace="cluster-info").server_info() == info
    await aclient.aclose()


async def test_framework_primitives_and_adapters_on_a_cluster(
    cluster_port: int, make_session: SessionFactory
) -> None:
    """fork crosses slots; the agents session and the LangGraph saver stay in their slots."""
    from langgraph.checkpoint.conformance import checkpointer_test, validate

    from convstore.adapters.langgraph import ConvstoreSaver
    from convstore.adapters.openai_agents import ConvstoreSession

    client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=cluster_port)
    store = AsyncConversationStore(client, namespace="cluster-frameworks")
    key = await store.sessions.create(make_session("fork-src"))
    await store.messages.append_many(key, [{"role": "user", "content": str(i)} for i in range(5)])
    target = make_session("fork-dst")
    keyspace = store.config.keyspace
    assert client.keyslot(keyspace.session(key).session) != client.keyslot(
        keyspace.session(target.generate_session_key()).session
    )
    new_key = await store.messages.fork(key, target)
    assert [m["content"] for m in await store.messages.history(new_key)] == [
        "0",
        "1",
        "2",
        "3",
        "4",
    ]
    assert (await store.messages.pop(new_key))["content"] == "4"
    assert (
        await store.messages.truncate_after(
            key, (await store.messages.page(key, limit=5)).items[0]["metadata"]["message_id"]
        )
        == 4
    )

    session = ConvstoreSession("agents-on-cluster", store=store)
    await session.add_items(
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    )
    assert (await session.pop_item()) == {"role": "assistant", "content": "b"}

    from google.adk.events.event import Event
    from google.adk.events.event_actions import EventActions

    from convstore.adapters.adk import ConvstoreSessionService

    service = ConvstoreSessionService(store=store)
    adk_session = await service.create_session(app_name="app", user_id="u", state={"app:a": 1})
    delta = {"app:b": 2, "user:c": 3, "d": 4, "temp:e": 5}
    await service.append_event(
        adk_session, Event(author="user", actions=EventActions(state_delta=delta))
    )
    loaded = await service.get_session(app_name="app", user_id="u", session_id=adk_session.id)
    assert loaded is not None and loaded.state == {"app:a": 1, "app:b": 2, "user:c": 3, "d": 4}
    assert [s.id for s in (await service.list_sessions(app_name="app")).sessions] == [
        adk_session.id
    ]

    @checkpointer_test(name="ConvstoreSaver on a cluster")
    async def saver() -> Any:
        yield ConvstoreSaver(store=store)

    report = await validate(saver)
    for capability in (
        "put",
        "put_writes",
        "get_tuple",
        "list",
        "delete_thread",
        "copy_thread",
        "prune",
    ):
        assert report.results[capability].passed is True, report.results[capability].failures
    await client.aclose()
