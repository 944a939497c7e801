"""``ConversationStore`` and ``AsyncConversationStore``: the two entry points.

Both hold a client, a :class:`StoreConfig` and two repositories, ``sessions`` and
``messages``; they differ only in the driver they hand the shared plans to.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

from convstore import connections, embedded_server, plans
from convstore.async_repositories import AsyncMessageRepository, AsyncSessionRepository
from convstore.closing import Closeable
from convstore.connections import ClientOptions
from convstore.drivers import AsyncDriver, SyncDriver
from convstore.errors import ConfigurationError, ValidationError
from convstore.inbox import AsyncInbox, Inbox
from convstore.inboxes import DEFAULT_GROUP, AsyncInboxRepository, InboxRepository
from convstore.keys import KeySpace
from convstore.monitoring import MetricsHook
from convstore.plans import Limits, Retention, ServerInfo, StoreConfig
from convstore.plans.config import InboxSettings
from convstore.policies import DEFAULT_RETRY, Durability, RetryPolicy, WriteConcern
from convstore.repositories import MessageRepository, SessionRepository

__all__ = ["DEFAULT_NAMESPACE", "AsyncConversationStore", "ConversationStore"]

DEFAULT_NAMESPACE = "convstore"
Seconds = float | timedelta | None


def _inbox_settings(inboxes: bool | InboxSettings) -> InboxSettings:
    if isinstance(inboxes, InboxSettings):
        return inboxes
    if not isinstance(inboxes, bool):
        raise ConfigurationError(
            f"inboxes must be True, False or an InboxSettings, got {type(inboxes).__name__}"
        )
    return InboxSettings(deliver=inboxes)


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
        retry: RetryPolicy | None = DEFAULT_RETRY,
        wait_replicas: int = 0,
        durability: Durability = "default",
        wait_timeout: float = 1.0,
        limits: Limits | None = None,
        metrics_hook: MetricsHook | None = None,
        inboxes: bool | InboxSettings = False,
    ) -> None:
        """Wrap an existing client (``decode_responses`` must be False).

        ``max_messages``, ``max_age`` (seconds or timedelta) and ``ttl`` (sliding,
        seconds or timedelta) are the defaults for every session; see
        :class:`Retention`. Each session can override them with
        ``sessions.set_retention``. ``retry`` is the store's retry policy (None: no
        retries); redis-py's own retries on ``client`` are set to 0 so it is the only
        one. ``wait_replicas`` / ``durability`` / ``wait_timeout`` are the default
        write concern (see :class:`WriteConcern`). ``limits`` (:class:`Limits`) bounds what
        is written, checked before anything is sent, and what reads accept.
        ``metrics_hook`` receives this store's measurements (besides the process-wide hook;
        see :mod:`convstore.monitoring`). ``inboxes=True`` (or an :class:`InboxSettings`)
        delivers every appended agent message to its recipient's inbox (see ``store.inbox``).
        """
        if limits is not None and not isinstance(limits, Limits):
            raise ValidationError(
                f"limits must be a convstore.Limits, got {type(limits).__name__}", field="limits"
            )
        cluster = connections.inspect_client(client, use_async=self._async)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError(
                f"retry must be a convstore RetryPolicy or None, got {type(retry).__name__}"
            )
        connections.disable_client_retries(client)
        self.client = client
        self.retry = retry
        self._metrics_hook = metrics_hook
        self.write_concern = WriteConcern(wait_replicas, durability, wait_timeout)
        read_timeout = connections.socket_timeout(client)
        if self.write_concern.active and read_timeout is not None and read_timeout <= wait_timeout:
            raise ConfigurationError(
                f"wait_timeout ({wait_timeout:g} s) must be shorter than the client's "
                f"socket_timeout ({read_timeout:g} s): WAIT/WAITAOF can block that long"
            )
        self.config = StoreConfig(
            KeySpace(namespace),
            Retention(max_messages, max_age, ttl),
            cluster=cluster,
            limits=limits or Limits(),
            inbox=_inbox_settings(inboxes),
        )
        self._build()

    def _build(self) -> None:
        raise NotImplementedError

    @property
    def metrics_hook(self) -> MetricsHook | None:
        """This store's own metrics hook (besides the process-wide one); assign to change it."""
        return self._metrics_hook

    @metrics_hook.setter
    def metrics_hook(self, hook: MetricsHook | None) -> None:
        self._metrics_hook = hook
        driver = self.__dict__.get("_driver")
        if driver is not None:
            driver.metrics_hook = hook

    @property
    def namespace(self) -> str:
        return self.config.keyspace.namespace

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        cluster: bool = False,
        max_messages: int | None = None,
        max_age: Seconds = None,
        ttl: Seconds = None,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        wait_replicas: int = 0,
        durability: Durability = "default",
        wait_timeout: float = 1.0,
        socket_timeout: float | None = 5.0,
        socket_connect_timeout: float | None = 5.0,
        max_connections: int | None = None,
        client_name: str | None = None,
        health_check_interval: float = 0.0,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        ssl_ca_certs: str | None = None,
        ssl_cert_reqs: Literal["none", "optional", "required"] | None = None,
        ssl_check_hostname: bool | None = None,
        limits: Limits | None = None,
        metrics_hook: MetricsHook | None = None,
        inboxes: bool | InboxSettings = False,
    ) -> Self:
        """Connect by URL (``redis://``, ``rediss://``, ``unix://``; credentials in the URL).

        The connection options are redis-py's (see :class:`ClientOptions`); the rest
        are the store's (see ``__init__``).
        """
        options = ClientOptions(
            socket_timeout,
            socket_connect_timeout,
            max_connections,
            client_name,
            health_check_interval,
            ssl_certfile,
            ssl_keyfile,
            ssl_ca_certs,
            ssl_cert_reqs,
            ssl_check_hostname,
        )
        client = connections.client_from_url(
            url, use_async=cls._async, cluster=cluster, options=options
        )
        return cls(
            client,
            namespace=namespace,
            max_messages=max_messages,
            max_age=max_age,
            ttl=ttl,
            retry=retry,
            wait_replicas=wait_replicas,
            durability=durability,
            wait_timeout=wait_timeout,
            limits=limits,
            metrics_hook=metrics_hook,
            inboxes=inboxes,
        )

    @classmethod
    def embedded(
        cls,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        server: Any = None,
        max_messages: int | None = None,
        max_age: Seconds = None,
        ttl: Seconds = None,
        path: str | os.PathLike[str] | None = None,
        appendfsync: embedded_server.Fsync | None = None,
        limits: Limits | None = None,
        inboxes: bool | InboxSettings = False,
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
                client,
                namespace=namespace,
                max_messages=max_messages,
                max_age=max_age,
                ttl=ttl,
                limits=limits,
                inboxes=inboxes,
            )
        if server is not None:
            raise ConfigurationError("embedded() takes a fakeredis server or a path, not both")
        attachment = embedded_server.attach(path, fsync=appendfsync or "always")
        try:
            client = connections.client_from_url(attachment.url, use_async=cls._async)
            store = cls(
                client,
                namespace=namespace,
                max_messages=max_messages,
                max_age=max_age,
                ttl=ttl,
                limits=limits,
                inboxes=inboxes,
            )
        except BaseException:
            attachment.release()
            raise
        store._embedded = attachment
        return store

    @classmethod
    def from_env(
        cls,
        *,
        namespace: str | None = None,
        max_messages: int | None = None,
        max_age: Seconds = None,
        ttl: Seconds = None,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        limits: Limits | None = None,
        inboxes: bool | InboxSettings = False,
    ) -> Self:
        """``REDIS_URL`` when set (with ``from_url``'s defaults), otherwise the embedded store.

        The namespace is ``namespace``, else ``CONVSTORE_NAMESPACE``, else ``"convstore"``.
        """
        namespace = namespace or os.environ.get("CONVSTORE_NAMESPACE") or DEFAULT_NAMESPACE
        url = os.environ.get("REDIS_URL")
        if url:
            return cls.from_url(
                url,
                namespace=namespace,
                max_messages=max_messages,
                max_age=max_age,
                ttl=ttl,
                retry=retry,
                limits=limits,
                inboxes=inboxes,
            )
        return cls.embedded(
            namespace=namespace,
            max_messages=max_messages,
            max_age=max_age,
            ttl=ttl,
            limits=limits,
            inboxes=inboxes,
        )


class ConversationStore(Closeable, _Store):
    """Blocking store over ``redis.Redis`` or ``redis.cluster.RedisCluster``."""

    _async = False

    def _build(self) -> None:
        self._driver = SyncDriver(
            self.client,
            retry=self.retry,
            concern=self.write_concern,
            cluster=self.config.cluster,
            metrics_hook=self.metrics_hook,
        )
        self.sessions = SessionRepository(self._driver, self.config)
        self.messages = MessageRepository(self._driver, self.config)
        self.inboxes = InboxRepository(self._driver, self.config)

    def inbox(
        self,
        recipient_id: str,
        *,
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        batch: int = 16,
        claim_idle: float = 30.0,
        max_deliveries: int = 5,
        wait: float | None = None,
    ) -> Inbox:
        """A blocking iterator over ``recipient_id``'s inbox: see ``InboxRepository.consume``."""
        return self.inboxes.consume(
            recipient_id, group=group, consumer=consumer, batch=batch, claim_idle=claim_idle,
            max_deliveries=max_deliveries, wait=wait,
        )  # fmt: skip

    @property
    def driver(self) -> SyncDriver:
        """The driver the repositories use; adapters run their own plans through it."""
        return self._driver

    def ping(self) -> bool:
        """True when the server answers; raises :class:`StoreUnavailable` when it cannot."""
        return self._driver.run(plans.ping(self.config))

    def server_info(self) -> ServerInfo:
        """The server's name, version and capabilities; asked at first use, then cached."""
        if self._server_info is None:
            self._server_info = self._driver.run(plans.server_info(self.config))
        return self._server_info

    def close(self) -> None:
        """Close the client's connections (the store is not usable afterwards)."""
        self.client.close()
        if self._embedded is not None:
            self._embedded.release()


class AsyncConversationStore(_Store):
    """asyncio store over ``redis.asyncio.Redis`` or its ``RedisCluster``."""

    _async = True

    def _build(self) -> None:
        self._driver = AsyncDriver(
            self.client,
            coalesce=not self.config.cluster,
            retry=self.retry,
            concern=self.write_concern,
            cluster=self.config.cluster,
            metrics_hook=self.metrics_hook,
        )
        self.sessions = AsyncSessionRepository(self._driver, self.config)
        self.messages = AsyncMessageRepository(self._driver, self.config)
        self.inboxes = AsyncInboxRepository(self._driver, self.config)

    def inbox(
        self,
        recipient_id: str,
        *,
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        batch: int = 16,
        claim_idle: float = 30.0,
        max_deliveries: int = 5,
        wait: float | None = None,
    ) -> AsyncInbox:
        """An async iterator over ``recipient_id``'s inbox: see ``InboxRepository.consume``."""
        return self.inboxes.consume(
            recipient_id, group=group, consumer=consumer, batch=batch, claim_idle=claim_idle,
            max_deliveries=max_deliveries, wait=wait,
        )  # fmt: skip

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
        """Close the client's connections (the store is not usable afterwards)."""
        await self.client.aclose()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.release)

    async def close(self) -> None:
        """The same as :meth:`aclose` (awaitable), so both stores share ``close``/``aclose``."""
        await self.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
