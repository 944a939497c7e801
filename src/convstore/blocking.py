"""Blocking reads (``XREAD BLOCK``, ``XREADGROUP BLOCK``) on a connection of their own.

A blocked read holds its connection until something arrives, so it never goes through
the store's driver: in the async store it would sit in a coalesced pipeline and delay
every other task's step, and a long block would exceed the socket timeout and look like a
dead server. Each iterator gets one dedicated connection (from the store client's pool,
or a new one to the key's node on a cluster), blocks for at most :func:`block_ms` per
call (well under the socket timeout) and loops. A broken connection is reopened with the
store's retry backoff; after ``attempts`` consecutive failures it raises
:class:`StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any, Protocol, Self

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
import redis.exceptions as rex

from convstore.closing import Closeable
from convstore.connections import disable_client_retries, socket_timeout
from convstore.errors import StoreUnavailable
from convstore.failures import translate
from convstore.policies import RetryPolicy

__all__ = [
    "AsyncBlockingConnection",
    "AsyncClosing",
    "BlockingConnection",
    "Closing",
    "block_ms",
]

#: Longest single BLOCK, in ms; shorter when the socket timeout is short.
MAX_BLOCK_MS = 1000
_BROKEN = (rex.ConnectionError, rex.TimeoutError, OSError)


def block_ms(timeout: float | None) -> int:
    """One BLOCK: at most a second, and at most a third of the socket timeout (seconds)."""
    if timeout is None:
        return MAX_BLOCK_MS
    return max(1, min(MAX_BLOCK_MS, int(timeout * 1000 / 3)))


class _Reconnect:
    """Consecutive-failure bookkeeping shared by both kinds of connection."""

    def __init__(self, retry: RetryPolicy | None, what: str) -> None:
        self.retry = retry
        self.what = what
        self.failures = 0

    def delay(self, exc: BaseException) -> float:
        self.failures += 1
        retry = self.retry
        if retry is None or self.failures >= retry.attempts:
            raise StoreUnavailable(
                f"Redis is unavailable during {self.what} after {self.failures} attempt(s): {exc}",
                outcome="unknown",
            ) from exc
        return float(retry.backoff.compute(self.failures))


class BlockingConnection:
    """One dedicated blocking-mode connection for a sync iterator."""

    def __init__(self, client: Any, key: str, retry: RetryPolicy | None, what: str) -> None:
        if isinstance(client, redis.cluster.RedisCluster):
            client = client.get_node_from_key(key).redis_connection  # type: ignore[no-untyped-call]
        self._client = redis.Redis(
            connection_pool=client.connection_pool, single_connection_client=True
        )
        disable_client_retries(self._client)
        self.block_ms = block_ms(socket_timeout(client))
        self._reconnect = _Reconnect(retry, what)
        self.reconnects = 0

    def call(self, *args: Any) -> Any:
        """Send one command; on a broken connection reopen it (with backoff) and resend it
        (``reconnects`` counts those, so a caller can re-read what a lost reply held)."""
        while True:
            try:
                reply = self._client.execute_command(*args)  # type: ignore[no-untyped-call]
            except _BROKEN as exc:
                self._drop()
                time.sleep(self._reconnect.delay(exc))
                self.reconnects += 1
                continue
            except rex.RedisError as exc:
                raise translate(exc, self._reconnect.what) from exc
            self._reconnect.failures = 0
            return reply

    def _drop(self) -> None:
        connection = self._client.connection
        if connection is not None:
            connection.disconnect()  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._drop()  # a read may be half done: never hand this connection back as is
        self._client.close()


class AsyncBlockingConnection:
    """One dedicated blocking-mode connection for an async iterator."""

    def __init__(self, client: Any, key: str, retry: RetryPolicy | None, what: str) -> None:
        if isinstance(client, redis.asyncio.cluster.RedisCluster):
            node = client.get_node_from_key(key)
            if node is None:
                raise StoreUnavailable(f"no cluster node serves {key!r}", outcome="not_sent")
            pool = redis.asyncio.ConnectionPool(
                connection_class=node.connection_class, max_connections=1, **node.connection_kwargs
            )
            self._client = redis.asyncio.Redis(connection_pool=pool, single_connection_client=True)
            self._own_pool: Any = pool
            self.block_ms = block_ms(node.connection_kwargs.get("socket_timeout"))
        else:
            self._client = redis.asyncio.Redis(
                connection_pool=client.connection_pool, single_connection_client=True
            )
            self._own_pool = None
            self.block_ms = block_ms(socket_timeout(client))
        disable_client_retries(self._client)
        self._reconnect = _Reconnect(retry, what)
        self.reconnects = 0
        self._closed = False

    async def call(self, *args: Any) -> Any:
        while True:
            try:
                reply = await self._client.execute_command(*args)  # type: ignore[no-untyped-call]
            except _BROKEN as exc:
                await self._drop()
                await asyncio.sleep(self._reconnect.delay(exc))
                self.reconnects += 1
                continue
            except asyncio.CancelledError:
                await self.aclose()  # a half-read reply: this connection is done
                raise
            except rex.RedisError as exc:
                raise translate(exc, self._reconnect.what) from exc
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # a client that swallowed the
                await self.aclose()  # cancellation (fakeredis's blocking reads): honour it
                raise asyncio.CancelledError
            self._reconnect.failures = 0
            return reply

    async def _drop(self) -> None:
        connection = self._client.connection
        if connection is not None:
            await connection.disconnect()

    async def aclose(self) -> None:
        """Close for good; safe to call twice (cancellation closes it, then the iterator)."""
        if self._closed:
            return
        self._closed = True
        await self._drop()
        await self._client.aclose()
        if self._own_pool is not None:
            await self._own_pool.disconnect()


class _Stoppable(Protocol):
    closed: bool


class Closing(Closeable):
    """``close``/``aclose`` and the context manager of a blocking iterator.

    Closing marks the iterator's state closed and drops its own connection; what it held
    stays as it was (an inbox's unacknowledged messages stay pending for other consumers).
    """

    _state: _Stoppable
    _conn: BlockingConnection | None

    def close(self) -> None:
        self._state.closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class AsyncClosing:
    """Async twin of :class:`Closing`: both ``close`` and ``aclose`` are awaitable."""

    _state: _Stoppable
    _conn: AsyncBlockingConnection | None

    async def aclose(self) -> None:
        self._state.closed = True
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.aclose()

    async def close(self) -> None:
        """The same as :meth:`aclose` (as on the stores)."""
        await self.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
