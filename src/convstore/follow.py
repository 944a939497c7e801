"""A live tail of one session: ``store.messages.follow(key, after=...)``.

``XREAD BLOCK`` on a connection of its own (``convstore.blocking``), looping with blocks
well under the socket timeout; a broken connection is reopened and the tail resumes from
the last entry it handed out, so nothing is skipped or repeated across a reconnect. It ends
on ``close()`` (sync), on cancellation or ``aclose()`` (async), or after ``wait`` seconds
without a message.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Self

from convstore.blocking import (
    AsyncBlockingConnection,
    AsyncClosing,
    BlockingConnection,
    Closing,
)
from convstore.drivers import AsyncDriver, SyncDriver
from convstore.models import REQUIRED_ROUTING_KEYS, AgentCommunicationMessage
from convstore.plans.config import StoreConfig
from convstore.plans.follow import follow_start
from convstore.plans.messages import decode_row
from convstore.plans.values import as_text
from convstore.validation import optional_seconds, positive_int

__all__ = ["AsyncFollower", "FollowedMessage", "Follower"]


class FollowedMessage:
    """One message of the followed session; ``entry_id`` is a cursor to resume after.

    ``message`` is decoded when first read, so a tail that only counts or forwards entries
    costs the event loop it shares with the store almost nothing."""

    __slots__ = ("_config", "_decoded", "_row", "entry_id", "session_key")

    def __init__(self, config: StoreConfig, session_key: str, entry_id: str, row: Any) -> None:
        self.session_key = session_key
        self.entry_id = entry_id
        self._config = config
        self._row = row
        self._decoded: dict[str, Any] | None = None

    @property
    def message(self) -> dict[str, Any]:
        """``{role, content, timestamp, metadata}``, as ``history()`` returns it."""
        if self._decoded is None:
            self._decoded = decode_row(self._config, self.session_key, self._row)
        return self._decoded

    def __repr__(self) -> str:
        return f"FollowedMessage(session_key={self.session_key!r}, entry_id={self.entry_id!r})"

    def agent_message(self) -> AgentCommunicationMessage | None:
        """The typed agent message, or None for a plain (ContextEngine) message."""
        if not set(REQUIRED_ROUTING_KEYS) <= self.message["metadata"].keys():
            return None
        return AgentCommunicationMessage.from_conversation_message_dict(
            self.message, self.session_key
        )


class _FollowState:
    def __init__(
        self, config: StoreConfig, key: str, after: str | None, wait: float | None, batch: int
    ) -> None:
        self.config = config
        self.key = key
        self.after = after
        self.stream = config.keyspace.session(key).messages
        self.wait = optional_seconds(wait, "wait")
        self.batch = positive_int(batch, "batch")
        self.cursor: str | None = None
        self.held: deque[FollowedMessage] = deque()
        self.closed = False

    def read_args(self, deadline: float | None, block_ms: int) -> tuple[Any, ...]:
        remaining = block_ms if deadline is None else (deadline - time.monotonic()) * 1000
        block = max(1, min(block_ms, int(remaining)))
        return ("XREAD", "COUNT", self.batch, "BLOCK", block, "STREAMS", self.stream, self.cursor)

    def hold(self, reply: Any) -> None:
        for row in reply[0][1] if reply else []:
            self.held.append(FollowedMessage(self.config, self.key, as_text(row[0]), row))

    def take(self) -> FollowedMessage:
        item = self.held.popleft()
        self.cursor = item.entry_id
        return item

    def expired(self, deadline: float | None) -> bool:
        return deadline is not None and time.monotonic() >= deadline


class Follower(Closing):
    """Blocking iterator over the new messages of one session (see the module docstring)."""

    _state: _FollowState

    def __init__(
        self,
        driver: SyncDriver,
        client: Any,
        config: StoreConfig,
        key: str,
        *,
        after: str | None,
        wait: float | None,
        batch: int,
    ) -> None:
        self._state = _FollowState(config, key, after, wait, batch)
        self._driver = driver
        self._client = client
        self._conn: BlockingConnection | None = None

    @property
    def cursor(self) -> str | None:
        """The entry id of the last message handed out (pass it as ``after`` to resume)."""
        return self._state.cursor

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> FollowedMessage:
        s = self._state
        if s.cursor is None:
            s.cursor = self._driver.run(follow_start(s.config, s.key, s.after))
        deadline = None if s.wait is None else time.monotonic() + s.wait
        while not s.held:
            if s.closed or s.expired(deadline):
                raise StopIteration
            if self._conn is None:
                self._conn = BlockingConnection(
                    self._client, s.stream, self._driver.retry, "follow"
                )
            s.hold(self._conn.call(*s.read_args(deadline, self._conn.block_ms)))
        return s.take()


class AsyncFollower(AsyncClosing):
    """Async twin of :class:`Follower`; cancelling a task blocked in it leaves nothing behind."""

    _state: _FollowState

    def __init__(
        self,
        driver: AsyncDriver,
        client: Any,
        config: StoreConfig,
        key: str,
        *,
        after: str | None,
        wait: float | None,
        batch: int,
    ) -> None:
        self._state = _FollowState(config, key, after, wait, batch)
        self._driver = driver
        self._client = client
        self._conn: AsyncBlockingConnection | None = None

    @property
    def cursor(self) -> str | None:
        return self._state.cursor

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> FollowedMessage:
        s = self._state
        if s.cursor is None:
            s.cursor = await self._driver.run(follow_start(s.config, s.key, s.after))
        deadline = None if s.wait is None else time.monotonic() + s.wait
        while not s.held:
            if s.closed or s.expired(deadline):
                raise StopAsyncIteration
            if self._conn is None:
                self._conn = AsyncBlockingConnection(
                    self._client, s.stream, self._driver.retry, "follow"
                )
            try:
                s.hold(await self._conn.call(*s.read_args(deadline, self._conn.block_ms)))
            except asyncio.CancelledError:
                self._conn = None  # closed by the cancellation; a later read opens a new one
                raise
        return s.take()
