"""The asyncio store's hiredis-packing connections: the same bytes as redis-py's own packer,
chosen by ``from_url`` for each URL scheme, and a real server's round trips through them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.connection as aconn
import redis.connection

from conftest import REDIS_URL, SessionFactory
from convstore import AsyncConversationStore, ConversationStore
from convstore.connections import (
    HIREDIS_AVAILABLE,
    HiredisPackingConnection,
    HiredisPackingSSLConnection,
    HiredisPackingUnixConnection,
    packing_form,
    use_hiredis_packing,
)
from convstore.errors import ConfigurationError

COMMANDS: list[tuple[Any, ...]] = [
    ("EVALSHA", "a" * 40, 2, b"ns:{k}:h", "ns:{k}:s", "110 1 0 0 0 *", b"\x00\xff\x00"),
    ("SET", "ünïcödé ☃", 12, 1.5, -7, 0.1, 1e300),
    ("XADD", b"stream", "*", "d", memoryview(b"view"), bytearray(b"array")),
    ("CONFIG GET", "maxmemory"),  # a command name with a space is split, as redis-py does
    ("SET", b"k", b"x" * 100_000),  # above redis-py's buffer cutoff
]


def test_hiredis_is_installed_for_the_suite() -> None:
    assert HIREDIS_AVAILABLE  # the test extra installs it: these tests must not be vacuous


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: str(a[0]))
def test_hiredis_packing_gives_redis_pys_own_bytes(args: tuple[Any, ...]) -> None:
    ours = b"".join(bytes(part) for part in HiredisPackingConnection().pack_command(*args))
    theirs = b"".join(bytes(part) for part in aconn.Connection().pack_command(*args))
    assert ours == theirs


def test_hiredis_packing_refuses_what_redis_py_refuses() -> None:
    for bad in (None, {"a": 1}, [1, 2]):
        with pytest.raises(redis.DataError):
            aconn.Connection().pack_command("SET", "k", bad)
        with pytest.raises(redis.DataError):
            HiredisPackingConnection().pack_command("SET", "k", bad)


def test_from_url_picks_the_packing_class_of_each_scheme() -> None:
    cases = {
        "redis://127.0.0.1:1/0": HiredisPackingConnection,
        "rediss://127.0.0.1:1/0": HiredisPackingSSLConnection,
        "unix:///tmp/convstore-none.sock": HiredisPackingUnixConnection,
    }
    for url, cls in cases.items():
        store = AsyncConversationStore.from_url(url)
        assert store.client.connection_pool.connection_class is cls
        # the same on a client built by hand: a connection_class keyword would lose to the
        # URL's scheme in redis-py, so use_hiredis_packing sets it on the pool
        own = use_hiredis_packing(redis.asyncio.Redis.from_url(url))
        assert own.connection_pool.connection_class is cls
    blocking = ConversationStore.from_url("redis://127.0.0.1:1/0")  # packs with hiredis already
    assert blocking.client.connection_pool.connection_class is redis.connection.Connection
    assert isinstance(
        blocking.client.connection_pool.make_connection()._command_packer,
        redis.connection.HiredisRespSerializer,
    )


def test_a_connection_class_of_your_own_keeps_what_it_adds() -> None:
    class Traced(aconn.Connection):
        traced = True

    packing = packing_form(Traced)
    assert issubclass(packing, Traced) and packing.traced  # type: ignore[attr-defined]
    assert packing_form(Traced) is packing and packing_form(packing) is packing
    assert packing_form(HiredisPackingConnection) is HiredisPackingConnection
    args = COMMANDS[0]
    assert b"".join(packing().pack_command(*args)) == b"".join(
        aconn.Connection().pack_command(*args)
    )
    with pytest.raises(ConfigurationError, match=r"redis\.asyncio\.Redis"):
        use_hiredis_packing(redis.Redis())


async def test_grouped_appends_round_trip_through_the_packing_connection(
    shared: str, make_session: SessionFactory
) -> None:
    store = AsyncConversationStore.from_url(REDIS_URL, namespace=shared)
    assert store.client.connection_pool.connection_class is HiredisPackingConnection
    keys = [await store.sessions.save(make_session(f"p{i}")) for i in range(24)]
    texts = ["plain", "ünïcödé ☃", "x" * 70_000, ""]

    async def writer(key: str) -> None:
        for text in texts:
            await store.messages.append(key, {"role": "user", "content": text})

    await asyncio.gather(*(writer(k) for k in keys))
    for key in keys:
        assert [m["content"] for m in await store.messages.history(key)] == texts
    await store.aclose()
