"""Failures of the store: no server, a server that never answers, unusable clients, foreign
or corrupt data; and the ways to build a store (embedded, from a URL, from the environment)."""

from __future__ import annotations

import inspect
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio

from conftest import REDIS_URL, SessionFactory, new_namespace
from convstore import (
    AsyncConversationStore,
    ConversationStore,
    Retention,
    RetryPolicy,
)
from convstore.errors import (
    CodecError,
    ConfigurationError,
    ConvstoreError,
    StoreError,
    StoreUnavailable,
    ValidationError,
)

Store = ConversationStore | AsyncConversationStore
UNREACHABLE = "redis://127.0.0.1:1/0"


async def aw(value: Any) -> Any:
    """The value, awaited if the async store handed back an awaitable."""
    return await value if inspect.isawaitable(value) else value


async def close(store: Store) -> None:
    await aw(store.aclose() if isinstance(store, AsyncConversationStore) else store.close())


STORE_CLASSES = pytest.mark.parametrize(
    "cls", [ConversationStore, AsyncConversationStore], ids=["sync", "async"]
)

# Every operation of both repositories, as (name, call(store, session)).
OPERATIONS: list[tuple[str, Callable[[Store, Any], Any]]] = [
    ("save", lambda s, session: s.sessions.save(session)),
    ("get", lambda s, session: s.sessions.get("k")),
    ("exists", lambda s, session: s.sessions.exists("k")),
    ("touch", lambda s, session: s.sessions.touch("k")),
    ("delete", lambda s, session: s.sessions.delete("k")),
    ("list", lambda s, session: s.sessions.list()),
    ("set_retention", lambda s, session: s.sessions.set_retention("k", Retention(ttl=5))),
    ("append", lambda s, session: s.messages.append("k", {"role": "user", "content": "x"})),
    (
        "append_many",
        lambda s, session: s.messages.append_many("k", [{"role": "user", "content": "x"}]),
    ),
    ("history", lambda s, session: s.messages.history("k")),
    ("last", lambda s, session: s.messages.last("k", 3)),
    ("page", lambda s, session: s.messages.page("k")),
    ("count", lambda s, session: s.messages.count("k")),
    ("agent_messages", lambda s, session: s.messages.agent_messages("k")),
    ("delete_message", lambda s, session: s.messages.delete_message("k", "m")),
    ("clear", lambda s, session: s.messages.clear("k")),
]
OPERATION_PARAMS = pytest.mark.parametrize(
    "operation", [op for _, op in OPERATIONS], ids=[name for name, _ in OPERATIONS]
)


# --------------------------------------------------------------------------- no server


@pytest.fixture
async def dead_store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    cls = request.param
    store = cls.from_url(
        UNREACHABLE,
        namespace=new_namespace(),
        socket_connect_timeout=0.2,
        retry=RetryPolicy(deadline=0.5),
    )
    yield store
    await close(store)


@pytest.mark.parametrize(
    "dead_store", [ConversationStore, AsyncConversationStore], ids=["sync", "async"], indirect=True
)
@OPERATION_PARAMS
async def test_unreachable_server_raises_store_unavailable(
    dead_store: Store, make_session: SessionFactory, operation: Callable[[Store, Any], Any]
) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        await aw(operation(dead_store, make_session("k")))
    assert time.monotonic() - started < 10
    assert isinstance(caught.value, ConnectionError)
    assert isinstance(caught.value, ConvstoreError)
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)
    assert caught.value.outcome == "not_sent" and not caught.value.sent  # refused at connect


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield int(listener.getsockname()[1])
    listener.close()


@STORE_CLASSES
async def test_server_that_never_answers_raises_store_unavailable(
    cls: type[Store], silent_port: int, make_session: SessionFactory
) -> None:
    store = cls.from_url(
        f"redis://127.0.0.1:{silent_port}/0",
        socket_timeout=0.2,
        socket_connect_timeout=0.2,
        retry=RetryPolicy(deadline=1.0),
    )
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            await aw(store.sessions.get("k"))
        assert isinstance(caught.value.__cause__, redis.exceptions.TimeoutError | ConnectionError)
        with pytest.raises(StoreUnavailable) as appended:
            await aw(store.messages.append("k", {"role": "user", "content": "x"}))
        assert appended.value.outcome == "unknown"  # sent, reply lost: it may be stored
        assert "same message_id" in str(appended.value)
        assert time.monotonic() - started < 15
    finally:
        await close(store)


# --------------------------------------------------------------------------- unusable clients


@pytest.mark.parametrize(
    "make_client",
    [
        lambda: redis.Redis(decode_responses=True),
        lambda: redis.Redis.from_url(REDIS_URL, decode_responses=True),
        lambda: fakeredis.FakeRedis(decode_responses=True),
    ],
    ids=["redis", "redis-from-url", "fakeredis"],
)
def test_sync_client_with_decode_responses_is_refused(make_client: Callable[[], Any]) -> None:
    client = make_client()
    try:
        with pytest.raises(ConfigurationError, match="decode_responses"):
            ConversationStore(client)
    finally:
        client.close()


@pytest.mark.parametrize(
    "make_client",
    [
        lambda: redis.asyncio.Redis(decode_responses=True),
        lambda: fakeredis.FakeAsyncRedis(decode_responses=True),
    ],
    ids=["redis", "fakeredis"],
)
async def test_async_client_with_decode_responses_is_refused(
    make_client: Callable[[], Any],
) -> None:
    client = make_client()
    try:
        with pytest.raises(ConfigurationError, match="decode_responses"):
            AsyncConversationStore(client)
    finally:
        await client.aclose()


@STORE_CLASSES
def test_from_url_refuses_decode_responses_and_non_clients(cls: type[Store]) -> None:
    with pytest.raises(TypeError):  # not a parameter: a typo or an unknown option fails here
        cls.from_url("redis://127.0.0.1:6379/15", decode_responses=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        cls.from_url("redis://127.0.0.1:6379/15", namspace="x")  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError):
        cls(redis.Redis(decode_responses=True))
    for not_a_client in (object(), "redis://127.0.0.1:6379", None):
        with pytest.raises(ConfigurationError):
            cls(not_a_client)
    assert issubclass(ConfigurationError, ValueError)


@STORE_CLASSES
@pytest.mark.parametrize("namespace", ["", "with space", "a:b", "{tag}", "x" * 65])
def test_bad_namespace_is_rejected(cls: type[Store], namespace: str) -> None:
    with pytest.raises(ValidationError):
        client = fakeredis.FakeAsyncRedis() if cls is AsyncConversationStore else fakeredis.FakeRedis()
        cls(client, namespace=namespace)


# --------------------------------------------------------------------------- foreign or corrupt data


@pytest.fixture(params=["sync", "async"])
def st(request: pytest.FixtureRequest, store: ConversationStore, astore: Any) -> Store:
    return store if request.param == "sync" else astore


async def test_foreign_data_under_a_session_key_raises_store_error(
    st: Store, sync_client: redis.Redis, make_session: SessionFactory
) -> None:
    keys = st.config.keyspace.session("s")
    sync_client.set(keys.session, "not a hash")
    with pytest.raises(StoreError, match="WRONGTYPE"):
        await aw(st.sessions.get("s"))
    with pytest.raises(StoreError):
        await aw(st.messages.append("s", {"role": "user", "content": "x"}))
    with pytest.raises(StoreError):
        await aw(st.sessions.save(make_session("s")))
    assert sync_client.get(keys.session) == b"not a hash"

    other = st.config.keyspace.session("t")
    await aw(st.sessions.save(make_session("t")))
    sync_client.set(other.messages, "not a stream")
    with pytest.raises(StoreError):
        await aw(st.messages.append("t", {"role": "user", "content": "x"}))
    with pytest.raises(StoreError):
        await aw(st.messages.history("t"))
    assert sync_client.get(other.messages) == b"not a stream"
    assert sync_client.exists(other.ids) == 0  # nothing half-written before the failure


async def test_corrupt_stored_bytes_raise_codec_error(
    st: Store, sync_client: redis.Redis, make_session: SessionFactory
) -> None:
    key = await aw(st.sessions.save(make_session("c")))
    await aw(st.messages.append(key, {"role": "user", "content": "fine"}))
    keys = st.config.keyspace.session(key)
    sync_client.xadd(keys.messages, {"bad-id": b"\xc1 not msgpack"}, id="*")
    with pytest.raises(CodecError):
        await aw(st.messages.history(key))
    sync_client.hset(keys.session, "rec", b"\x93\x01\x02\x03")  # msgpack, but not a session
    with pytest.raises(CodecError):
        await aw(st.sessions.get(key))


# --------------------------------------------------------------------------- ways to build a store


def test_embedded_sync_store_works_without_a_server(make_session: SessionFactory) -> None:
    with ConversationStore.embedded() as store:
        assert isinstance(store.client, fakeredis.FakeRedis)
        assert store.ping()
        key = store.sessions.save(make_session("e"))
        store.messages.append_many(key, [{"role": "user", "content": str(i)} for i in range(5)])
        assert [m["content"] for m in store.messages.last(key, 2)] == ["3", "4"]
        assert store.messages.count(key) == 5
        assert [s.session_id for s in store.sessions.list().items] == ["e"]
        assert store.namespace == "convstore"
        # another embedded store is another server...
        assert ConversationStore.embedded().sessions.get(key) is None
    # ...unless they share one
    server = fakeredis.FakeServer()
    one = ConversationStore.embedded(namespace="one", server=server)
    two = ConversationStore.embedded(namespace="one", server=server)
    one.sessions.save(make_session("shared"))
    assert two.sessions.exists("shared")
    assert not ConversationStore.embedded(namespace="other", server=server).sessions.exists("shared")


async def test_embedded_async_store_works_without_a_server(make_session: SessionFactory) -> None:
    async with AsyncConversationStore.embedded(ttl=30, max_messages=3) as store:
        assert isinstance(store.client, fakeredis.FakeAsyncRedis)
        assert await store.ping()
        key = await store.sessions.save(make_session("e"))
        await store.messages.append_many(
            key, [{"role": "user", "content": str(i)} for i in range(5)]
        )
        assert [m["content"] for m in await store.messages.history(key)] == ["2", "3", "4"]
        assert 0 < await store.client.pttl(store.config.keyspace.session(key).messages) <= 30_000
        page = await store.sessions.list()
        assert [s.session_id for s in page.items] == ["e"]


@pytest.mark.parametrize(
    ("cls", "client_type"),
    [(ConversationStore, redis.Redis), (AsyncConversationStore, redis.asyncio.Redis)],
    ids=["sync", "async"],
)
async def test_from_url_with_credentials_builds_a_client(
    cls: type[Store], client_type: type
) -> None:
    store = cls.from_url(
        "redis://alice:s%40cret@127.0.0.1:6390/4", namespace="ns1", max_messages=7
    )
    try:
        assert isinstance(store.client, client_type)
        options = store.client.connection_pool.connection_kwargs
        assert (options["username"], options["password"]) == ("alice", "s@cret")
        assert (options["host"], options["port"], options["db"]) == ("127.0.0.1", 6390, 4)
        assert not options.get("decode_responses")
        assert options["socket_timeout"] == 5.0  # never hang forever by default
        assert store.namespace == "ns1"
        assert store.config.retention.max_messages == 7
    finally:
        await close(store)

    custom = cls.from_url("redis://127.0.0.1:6390/0", socket_timeout=1.5)
    assert custom.client.connection_pool.connection_kwargs["socket_timeout"] == 1.5
    await close(custom)

    tls = cls.from_url("rediss://bob:pw@example.invalid:6380/1")
    assert "SSL" in tls.client.connection_pool.connection_class.__name__
    assert tls.client.connection_pool.connection_kwargs["password"] == "pw"
    await close(tls)

    unix = cls.from_url("unix:///tmp/no-such-redis.sock?db=2", retry=None)
    assert unix.client.connection_pool.connection_kwargs["path"] == "/tmp/no-such-redis.sock"
    assert unix.client.connection_pool.connection_kwargs["db"] == 2
    with pytest.raises(StoreUnavailable):
        await aw(unix.sessions.get("k"))
    await close(unix)


@STORE_CLASSES
async def test_from_env_uses_redis_url_or_embedded(
    cls: type[Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    embedded = cls.from_env(namespace="envtest")
    assert isinstance(embedded.client, fakeredis.FakeRedis | fakeredis.FakeAsyncRedis)
    await close(embedded)
    monkeypatch.setenv("REDIS_URL", "redis://carol:pw@127.0.0.1:6391/3")
    remote = cls.from_env(namespace="envtest")
    assert not isinstance(remote.client, fakeredis.FakeRedis | fakeredis.FakeAsyncRedis)
    options = remote.client.connection_pool.connection_kwargs
    assert (options["username"], options["port"], options["db"]) == ("carol", 6391, 3)
    await close(remote)


def test_ping_on_an_unreachable_server_raises_store_unavailable() -> None:
    store = ConversationStore.from_url(
        "redis://127.0.0.1:1/0", socket_connect_timeout=0.2, retry=RetryPolicy(deadline=0.3)
    )
    with pytest.raises(StoreUnavailable):
        store.ping()


async def test_async_ping_on_an_unreachable_server_raises_store_unavailable() -> None:
    store = AsyncConversationStore.from_url(
        "redis://127.0.0.1:1/0", socket_connect_timeout=0.2, retry=RetryPolicy(deadline=0.3)
    )
    with pytest.raises(StoreUnavailable):
        await store.ping()
    await store.aclose()
