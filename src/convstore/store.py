"""``ConversationStore`` and ``AsyncConversationStore``: the two entry points.

Both hold a client, a :class:`StoreConfig` and two repositories, ``sessions`` and
``messages``; they differ only in the driver they hand the shared plans to.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from types import TracebackType
from typing import Any, ClassVar, Self

from convstore import connections, embedded_server, plans
from convstore.drivers import AsyncDriver, SyncDriver
from convstore.errors import ConfigurationError
from convstore.keys import KeySpace
from convstore.plans import Retention, ServerInfo, StoreConfig
from convstore.repositories import (
    AsyncMessageRepository,
    AsyncSessionRepository,
    MessageRepository,
    SessionRepository,
)

__all__ = ["DEFAULT_NAMESPACE", "AsyncConversationStore", "ConversationStore"]

DEFAULT_NAMESPACE = "convstore"
Seconds = float | timedelta | None


class _Store:
    _async: ClassVar[bool]
    _server_info: ServerInfo | None = None  # detected at first use of server_info()
    _embedded: embedded_server.Attachment | None = None  # set by embedded(path=...)

    def __init__(
        self,
        client: Any,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        max_messages: int | None = None,
        max_age: Seconds = None,
        ttl: Seconds = None,
    ) -> None:
        """Wrap an existing client (``decode_responses`` must be False).

        ``max_messages``, ``max_age`` (seconds or timedelta) and ``ttl`` (sliding,
        seconds or timedelta) are the defaults for every session; see
        :class:`Retention`. Each session can override them with
        ``sessions.set_retention``.
        """
        cluster = connections.inspect_client(client)
        self.client = client
        self.config = StoreConfig(
            KeySpace(namespace), Retention(max_messages, max_age, ttl), cluster=cluster
        )

    @property
    def namespace(self) -> str:
        return self.config.keyspace.namespace

    @classmethod
    def from_url(
        cls,
        url: str,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        cluster: bool = False,
        max_messages: int | None = None,
        max_age: Seconds = None,
        ttl: Seconds = None,
        **client_options: Any,
    ) -> Self:
        """Connect by URL (``redis://``, ``rediss://``, ``unix://``; credentials in the URL).

        Extra keyword arguments go to redis-py's ``from_url``.
        """
        client = connections.client_from_url(
            url, use_async=cls._async, cluster=cluster, **client_options
        )
        return cls(client, namespace=namespace, max_messages=max_messages, max_age=max_age, ttl=ttl)

    @classmethod
    def embedded(
        cls,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        server: Any = None,
        max_messages: int | None = None,
        max_age: Seconds = None,
        ttl: Seconds = None,
        path: str | os.PathLike[str] | None = None,
        appendfsync: embedded_server.Fsync | None = None,
    ) -> Self:
        """An in-process Redis (needs ``convstore[embedded]``); nothing leaves the process.

        With ``path``: a real Valkey server kept by the library, its data in an append-only
        file under ``path`` (needs ``convstore[server]``); stores on one path share it and
        the last one to close stops it. ``appendfsync`` (with ``path`` only) applies when this
        call starts the server: ``"always"`` (the default: an acknowledged write is on disk)
        or ``"everysec"``. See
        :mod:`convstore.embedded_server`.
        """
        if path is None:
            if appendfsync is not None:
                raise ConfigurationError("appendfsync applies to embedded(path=...) only")
            client = connections.embedded_client(use_async=cls._async, server=server)
            return cls(
                client, namespace=namespace, max_messages=max_messages, max_age=max_age, ttl=ttl
            )
        if server is not None:
            raise ConfigurationError("embedded() takes a fakeredis server or a path, not both")
        attachment = embedded_server.attach(path, fsync=appendfsync or "always")
        try:
            client = connections.client_from_url(attachment.url, use_async=cls._async)
            store = cls(
                client, namespace=namespace, max_messages=max_messages, max_age=max_age, ttl=ttl
            )
        except BaseException:
            attachment.release()
            raise
        store._embedded = attachment
        return store

    @classmethod
    def from_env(cls, namespace: str = DEFAULT_NAMESPACE, **options: Any) -> Self:
        """``REDIS_URL`` when set, otherwise the embedded store."""
        url = os.environ.get("REDIS_URL")
        if url:
            return cls.from_url(url, namespace, **options)
        return cls.embedded(namespace, **options)


class ConversationStore(_Store):
    """Blocking store over ``redis.Redis`` or ``redis.cluster.RedisCluster``."""

    _async = False

    def __init__(self, client: Any, **options: Any) -> None:
        super().__init__(client, **options)
        self._driver = SyncDriver(client)
        self.sessions = SessionRepository(self._driver, self.config)
        self.messages = MessageRepository(self._driver, self.config)

    def ping(self) -> bool:
        """True when the server answers; raises :class:`StoreUnavailable` when it cannot."""
        return self._driver.run(plans.ping(self.config))

    def server_info(self) -> ServerInfo:
        """The server's name, version and capabilities; asked at first use, then cached."""
        if self._server_info is None:
            self._server_info = self._driver.run(plans.server_info(self.config))
        return self._server_info

    def close(self) -> None:
        self.client.close()
        if self._embedded is not None:
            self._embedded.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncConversationStore(_Store):
    """asyncio store over ``redis.asyncio.Redis`` or its ``RedisCluster``."""

    _async = True

    def __init__(self, client: Any, **options: Any) -> None:
        super().__init__(client, **options)
        self._driver = AsyncDriver(client, coalesce=not self.config.cluster)
        self.sessions = AsyncSessionRepository(self._driver, self.config)
        self.messages = AsyncMessageRepository(self._driver, self.config)

    @property
    def driver(self) -> AsyncDriver:
        """The driver the repositories use; adapters run their own plans through it."""
        return self._driver

    async def ping(self) -> bool:
        """True when the server answers; raises :class:`StoreUnavailable` when it cannot."""
        return await self._driver.run(plans.ping(self.config))

    async def server_info(self) -> ServerInfo:
        """The server's name, version and capabilities; asked at first use, then cached."""
        if self._server_info is None:
            self._server_info = await self._driver.run(plans.server_info(self.config))
        return self._server_info

    async def aclose(self) -> None:
        await self.client.aclose()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.release)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
