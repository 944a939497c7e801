"""``ConversationStore`` and ``AsyncConversationStore``: the two entry points.

Both hold a client, a :class:`StoreConfig` and two repositories, ``sessions`` and
``messages``; they differ only in the driver they hand the shared plans to.
"""

from __future__ import annotations

import os
from datetime import timedelta
from types import TracebackType
from typing import Any, ClassVar, Self

from convstore import connections, plans
from convstore.drivers import AsyncDriver, SyncDriver
from convstore.errors import ValidationError
from convstore.keys import KeySpace
from convstore.plans import Limits, Retention, StoreConfig
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

    def __init__(
        self,
        client: Any,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        max_messages: int | None = None,
        max_age: Seconds = None,
        ttl: Seconds = None,
        limits: Limits | None = None,
    ) -> None:
        """Wrap an existing client (``decode_responses`` must be False).

        ``max_messages``, ``max_age`` (seconds or timedelta) and ``ttl`` (sliding,
        seconds or timedelta) are the defaults for every session; see
        :class:`Retention`. Each session can override them with
        ``sessions.set_retention``. ``limits`` (:class:`Limits`) bounds what is written,
        checked before anything is sent, and what reads accept.
        """
        if limits is not None and not isinstance(limits, Limits):
            raise ValidationError(
                f"limits must be a convstore.Limits, got {type(limits).__name__}", field="limits"
            )
        cluster = connections.inspect_client(client)
        self.client = client
        self.config = StoreConfig(
            KeySpace(namespace),
            Retention(max_messages, max_age, ttl),
            cluster=cluster,
            limits=limits or Limits(),
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
        limits: Limits | None = None,
        **client_options: Any,
    ) -> Self:
        """Connect by URL (``redis://``, ``rediss://``, ``unix://``; credentials in the URL).

        Extra keyword arguments go to redis-py's ``from_url``.
        """
        client = connections.client_from_url(
            url, use_async=cls._async, cluster=cluster, **client_options
        )
        return cls(
            client,
            namespace=namespace,
            max_messages=max_messages,
            max_age=max_age,
            ttl=ttl,
            limits=limits,
        )

    @classmethod
    def embedded(
        cls,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        server: Any = None,
        max_messages: int | None = None,
        max_age: Seconds = None,
        ttl: Seconds = None,
        limits: Limits | None = None,
    ) -> Self:
        """An in-process Redis (needs ``convstore[embedded]``); nothing leaves the process."""
        client = connections.embedded_client(use_async=cls._async, server=server)
        return cls(
            client,
            namespace=namespace,
            max_messages=max_messages,
            max_age=max_age,
            ttl=ttl,
            limits=limits,
        )

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

    def close(self) -> None:
        self.client.close()

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

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
