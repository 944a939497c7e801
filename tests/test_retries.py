"""The store's retry policy, step safety, client checks and failure mapping, without faults.

Fake clients stand in for redis-py where a test needs a connection error at an exact
moment; everything a real server decides (auth, ACL, protocol) runs on a server the
test starts itself.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio
import redis.exceptions as rex
from redis.backoff import NoBackoff

from convstore import (
    AsyncConversationStore,
    AuthenticationFailed,
    ClusterError,
    CodecError,
    ConfigurationError,
    ConversationStore,
    NoSocketTimeoutWarning,
    PermissionDenied,
    ProtocolError,
    RetryPolicy,
    StoreError,
    StoreUnavailable,
    ValidationError,
    lua,
)
from convstore.drivers import AsyncDriver, SyncDriver
from convstore.failures import translate
from convstore.plans import Batch, Call, Plan, Run
from servers import start_server

FAST = RetryPolicy(attempts=5, backoff=NoBackoff(), deadline=5.0)
LOST = rex.ConnectionError("Error while reading from 127.0.0.1:6379 : (104, 'reset')")
REFUSED = rex.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def test_step_safety_is_declared() -> None:
    assert Call(("HMGET", "k", "a")).safe and Call(("ZADD", "i", "GT", 1, "m")).safe
    assert not Call(("ZADD", "i", "INCR", 1, "m")).safe
    assert not Call(("DEL", "k")).safe and not Call(("SET", "k", "v")).safe
    assert Run(lua.APPEND, (), ()).safe and Run(lua.TOUCH, (), ()).safe
    assert not Run(lua.SAVE, (), ()).safe and not Run(lua.DELETE, (), ()).safe
    assert not Run(lua.CLEAR, (), ()).safe and not Run(lua.DELETE_MESSAGE, (), ()).safe
    assert Batch((Call(("EXISTS", "k")), Run(lua.COUNT, (), ()))).safe
    assert not Batch((Call(("EXISTS", "k")), Run(lua.SAVE, (), ()))).safe


def test_retry_policy_is_validated() -> None:
    with pytest.raises(ValidationError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValidationError):
        RetryPolicy(backoff=0.1)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RetryPolicy(deadline=-1)
    assert RetryPolicy(deadline=None).deadline is None


class FlakyClient:
    """Fails the first ``failures`` commands with ``error``, then answers b"OK"."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.sent = failures, error, []

    def execute_command(self, *args: Any) -> Any:
        self.sent.append(args)
        if self.failures:
            self.failures -= 1
            raise self.error
        return b"OK"


def one_call(*args: Any) -> Plan[Any]:
    return (yield Call(args))


def test_a_safe_step_is_retried_until_it_answers() -> None:
    client = FlakyClient(3, LOST)
    assert SyncDriver(client, retry=FAST).run(one_call("HMGET", "k", "f")) == b"OK"
    assert len(client.sent) == 4


def test_an_unsafe_step_whose_reply_was_lost_is_never_resent() -> None:
    client = FlakyClient(1, LOST)
    with pytest.raises(StoreUnavailable) as caught:
        SyncDriver(client, retry=FAST).run(one_call("SET", "k", "v"))
    assert len(client.sent) == 1
    assert caught.value.outcome == "unknown" and caught.value.sent
    assert "not safe to re-send" in str(caught.value)
    assert caught.value.__cause__ is LOST


def test_an_unsafe_step_refused_at_connect_is_retried() -> None:
    client = FlakyClient(2, REFUSED)  # never sent: repeating it cannot duplicate anything
    assert SyncDriver(client, retry=FAST).run(one_call("SET", "k", "v")) == b"OK"
    assert len(client.sent) == 3


def test_no_retry_policy_means_one_attempt_and_never_sent_is_reported() -> None:
    client = FlakyClient(1, REFUSED)
    with pytest.raises(StoreUnavailable) as caught:
        SyncDriver(client, retry=None).run(one_call("HMGET", "k", "f"))
    assert len(client.sent) == 1 and caught.value.outcome == "not_sent"
    assert "nothing was sent" in str(caught.value)


def test_attempts_and_deadline_bound_the_retries() -> None:
    client = FlakyClient(100, LOST)
    with pytest.raises(StoreUnavailable):
        SyncDriver(client, retry=FAST).run(one_call("HMGET", "k", "f"))
    assert len(client.sent) == 5
    client = FlakyClient(10**6, LOST)
    slow = RetryPolicy(attempts=10**6, backoff=NoBackoff(), deadline=0.2)
    with pytest.raises(StoreUnavailable):
        SyncDriver(client, retry=slow).run(one_call("HMGET", "k", "f"))


class ScriptClient(FlakyClient):
    """A FlakyClient that also runs scripts (by EVALSHA of a registered sha)."""

    def register_script(self, source: str) -> Any:
        return type("Registered", (), {"sha": "0" * 40})()


class AsyncScriptClient(ScriptClient):
    async def execute_command(self, *args: Any) -> Any:  # type: ignore[override]
        return super().execute_command(*args)


def one_run(step: Run) -> Plan[Any]:
    return (yield step)


def test_a_script_is_resent_with_its_resend_arguments() -> None:
    """APPEND's first send of ids it generated skips their lookup; a re-send must not."""
    client = ScriptClient(2, LOST)
    step = Run(lua.APPEND, ("k",), ("first", "m"), 1, ("again", "m"))
    assert SyncDriver(client, retry=FAST).run(one_run(step)) == b"OK"
    assert [args[4] for args in client.sent] == ["first", "again", "again"]


async def test_an_async_script_is_resent_with_its_resend_arguments() -> None:
    for coalesce in (True, False):
        client = AsyncScriptClient(1, LOST)
        step = Run(lua.APPEND, ("k",), ("first", "m"), 1, ("again", "m"))
        driver = AsyncDriver(client, retry=FAST, coalesce=coalesce)
        assert await driver.run(one_run(step)) == b"OK"
        assert [args[4] for args in client.sent] == ["first", "again"]


class FlakyAsyncClient:
    """An asyncio client whose first pipeline fails after sending (reply lost)."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []
        self.fail_next_pipeline = True

    async def execute_command(self, *args: Any) -> Any:
        self.sent.append(args)
        return b"OK"

    def pipeline(self, transaction: bool = False) -> FlakyAsyncClient.Pipe:
        return FlakyAsyncClient.Pipe(self)

    class Pipe:
        def __init__(self, owner: FlakyAsyncClient) -> None:
            self.owner, self.queued = owner, []

        def execute_command(self, *args: Any) -> None:
            self.queued.append(args)

        async def execute(self, raise_on_error: bool = True) -> list[Any]:
            self.owner.sent.extend(self.queued)
            if self.owner.fail_next_pipeline:
                self.owner.fail_next_pipeline = False
                raise LOST
            return [self.owner.reply(args) for args in self.queued]

    def reply(self, args: tuple[Any, ...]) -> Any:
        return b"OK"


async def test_coalesced_retry_never_resends_another_tasks_unsafe_step() -> None:
    client = FlakyAsyncClient()
    driver = AsyncDriver(client, retry=FAST)
    safe = asyncio.ensure_future(driver.run(one_call("HMGET", "k", "f")))
    unsafe = asyncio.ensure_future(driver.run(one_call("SET", "k", "v")))
    results = await asyncio.gather(safe, unsafe, return_exceptions=True)
    assert results[0] == b"OK"
    assert isinstance(results[1], StoreUnavailable) and results[1].outcome == "unknown"
    assert client.sent.count(("SET", "k", "v")) == 1  # in the failed pipeline only
    assert client.sent.count(("HMGET", "k", "f")) == 2  # the pipeline, then its own retry


class GroupingAsyncClient(FlakyAsyncClient):
    """A FlakyAsyncClient that answers a grouped script call with one reply per session,
    as the server would."""

    def register_script(self, source: str) -> Any:
        return type("Registered", (), {"sha": "grouped" if "pcall(run_one)" in source else "one"})()

    def reply(self, args: tuple[Any, ...]) -> Any:
        if args[1] == "grouped":  # ARGV[1] lists "<keys>,<args>" per session
            return [b"OK"] * len(args[3 + int(args[2])].split())
        return b"OK"


async def test_a_lost_grouped_call_is_retried_by_each_session_with_its_resend_arguments() -> None:
    client = GroupingAsyncClient()
    driver = AsyncDriver(client, retry=FAST)
    steps = [Run(lua.APPEND, (f"k{i}",), ("first", f"m{i}"), 1, ("again", f"m{i}")) for i in range(3)]
    results = await asyncio.gather(*(driver.run(one_run(step)) for step in steps))
    assert results == [b"OK"] * 3
    first, *retries = client.sent
    assert first[:5] == ("EVALSHA", "grouped", 3, "k0", "k1")  # one call for the three
    assert first[6:] == ("1,2 1,2 1,2", "first", "m0", "first", "m1", "first", "m2")
    # each session re-sent its own step once, with its re-send arguments (the id lookup on)
    resent = [args for args in retries if args[1] == "grouped"]
    assert len(resent) == 1 and resent[0][6:] == (
        "1,2 1,2 1,2",
        "again",
        "m0",
        "again",
        "m1",
        "again",
        "m2",
    )


# --------------------------------------------------------------------------- clients


def test_wrong_client_kind_is_refused_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="AsyncConversationStore"):
        ConversationStore(redis.asyncio.Redis())
    with pytest.raises(ConfigurationError, match=r"ConversationStore needs redis\.Redis"):
        ConversationStore(fakeredis.FakeAsyncRedis())
    with pytest.raises(ConfigurationError, match=r"redis\.asyncio\.Redis"):
        AsyncConversationStore(redis.Redis())


def test_client_without_socket_timeout_warns() -> None:
    with pytest.warns(NoSocketTimeoutWarning, match="socket_timeout=None"):
        ConversationStore(redis.Redis(socket_timeout=None))
    with pytest.warns(NoSocketTimeoutWarning):
        AsyncConversationStore(redis.asyncio.Redis(socket_timeout=None))


def test_redis_py_retries_are_set_to_zero_on_wrapped_and_built_clients() -> None:
    client = redis.Redis()  # redis.Redis() retries by default
    assert client.get_retry().get_retries() > 0
    ConversationStore(client)
    assert client.get_retry().get_retries() == 0
    assert ConversationStore.from_url("redis://127.0.0.1:1/0").client.get_retry().get_retries() == 0
    aclient = redis.asyncio.Redis()
    AsyncConversationStore(aclient)
    assert aclient.get_retry().get_retries() == 0


def test_typed_keyword_only_constructors() -> None:
    with pytest.raises(TypeError):
        ConversationStore.from_url("redis://127.0.0.1:1/0", namspace="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ConversationStore.from_url("redis://127.0.0.1:1/0", "ns")  # type: ignore[misc]
    with pytest.raises(TypeError):
        ConversationStore(fakeredis.FakeRedis(), "ns")  # type: ignore[misc]
    with pytest.raises(ConfigurationError, match="rediss://"):
        ConversationStore.from_url("redis://127.0.0.1:1/0", ssl_ca_certs="/ca.pem")
    with pytest.raises(ConfigurationError):
        ConversationStore(fakeredis.FakeRedis(), retry=3)  # type: ignore[arg-type]


async def test_close_and_aclose_on_both_stores() -> None:
    sync = ConversationStore.embedded()
    sync.close()
    sync = ConversationStore.embedded()
    await sync.aclose()
    astore = AsyncConversationStore.embedded()
    await astore.close()
    astore = AsyncConversationStore.embedded()
    await astore.aclose()
    for cls in (ConversationStore, AsyncConversationStore):
        assert hasattr(cls, "close") and hasattr(cls, "aclose")


# --------------------------------------------------------------------------- failure mapping


def test_translate_maps_every_redis_py_family() -> None:
    cases = {
        rex.AuthenticationError("invalid username-password pair"): AuthenticationFailed,
        rex.ResponseError("NOAUTH Authentication required."): AuthenticationFailed,
        rex.NoPermissionError("NOPERM this user has no permissions"): PermissionDenied,
        rex.InvalidResponse("Protocol Error: b'H'"): ProtocolError,
        rex.DataError("Invalid input of type: 'dict'"): CodecError,
        rex.ClusterError("slots not covered"): ClusterError,
        rex.MovedError("3999 127.0.0.1:6381"): ClusterError,
        rex.RedisClusterException("No targets"): ClusterError,
        rex.ResponseError("WRONGTYPE Operation against a key"): StoreError,
    }
    for exc, kind in cases.items():
        mapped = translate(exc, "append_messages")
        assert type(mapped) is kind, (exc, mapped)
        assert "append_messages" in str(mapped)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[int]:
    server = start_server(tmp_path)
    admin = redis.Redis(port=server.port)
    admin.config_set("requirepass", "sesame")
    admin = redis.Redis(port=server.port, password="sesame")
    admin.acl_setuser("reader", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@read"])
    admin.close()
    yield server.port
    server.stop()


def test_auth_and_acl_failures_are_typed(secured: int) -> None:
    base = f"redis://127.0.0.1:{secured}/0"
    for url in (base, f"redis://default:wrong@127.0.0.1:{secured}/0"):
        with pytest.raises(AuthenticationFailed) as caught:
            ConversationStore.from_url(url).sessions.exists("k")
        assert isinstance(caught.value.__cause__, rex.RedisError)
    reader = ConversationStore.from_url(f"redis://reader:pw@127.0.0.1:{secured}/0")
    assert reader.sessions.get("k") is None
    with pytest.raises(PermissionDenied) as denied:
        reader.messages.append("k", {"role": "user", "content": "x"})
    assert "no permissions" in str(denied.value) and isinstance(denied.value, StoreError)
    assert isinstance(denied.value.__cause__, rex.NoPermissionError)
    reader.close()


@pytest.fixture
def not_redis() -> Iterator[int]:
    """A TCP service on loopback that answers every request with an HTTP error."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    conn.recv(4096)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join()
    listener.close()


def test_a_non_redis_service_is_a_protocol_error(not_redis: int) -> None:
    store = ConversationStore.from_url(f"redis://127.0.0.1:{not_redis}/0", socket_timeout=1)
    with pytest.raises(ProtocolError) as caught:
        store.sessions.exists("k")
    assert isinstance(caught.value.__cause__, rex.InvalidResponse)
    store.close()
