"""Consuming an inbox: blocking sync and async iterators over one consumer group.

``store.inbox(recipient_id, group=..., consumer=...)`` reads ``inbox:{recipient_id}`` with
``XREADGROUP BLOCK`` on a connection of its own (``convstore.blocking``). Each item is an
:class:`InboxDelivery` (or :class:`AsyncInboxDelivery`): the typed message, its session
key and entry ids, and ``ack()``. An unacknowledged entry stays pending; after
``claim_idle`` seconds another consumer of the group reclaims it (``XPENDING IDLE`` + ``XCLAIM``); after
``max_deliveries`` deliveries it goes to the dead letters with the reason instead. At most
``batch`` entries are held by the iterator at a time (backpressure).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Self

from convstore.blocking import (
    AsyncBlockingConnection,
    AsyncClosing,
    BlockingConnection,
    Closing,
)
from convstore.drivers import AsyncDriver, SyncDriver
from convstore.errors import CodecError
from convstore.models import AgentCommunicationMessage
from convstore.plans import inbox as plans
from convstore.plans.config import StoreConfig
from convstore.plans.inbox import InboxEntry
from convstore.plans.steps import Plan
from convstore.plans.values import as_text
from convstore.validation import non_empty_str, non_negative_number, optional_seconds, positive_int

__all__ = ["AsyncInbox", "AsyncInboxDelivery", "Inbox", "InboxDelivery"]

#: Longest pause between two reclaim checks, in seconds.
MAX_CLAIM_INTERVAL = 5.0


@dataclass(frozen=True, slots=True)
class _Where:
    """Which inbox, group and consumer; what every ack needs."""

    config: StoreConfig
    recipient_id: str
    group: str
    consumer: str


class _Delivery:
    """The message, where it came from, and where it sits in the inbox."""

    __slots__ = ("_where", "claimed", "inbox_id", "message", "session_entry_id", "session_key")

    def __init__(self, where: _Where, entry: InboxEntry, claimed: bool) -> None:
        self.message: AgentCommunicationMessage = entry.message
        self.session_key: str = entry.session_key
        #: The entry id in the session stream: the message's order among its session's.
        self.session_entry_id: str = entry.session_entry_id
        self.inbox_id: str = entry.inbox_id  # the entry id in the inbox stream
        self.claimed: bool = claimed  # reclaimed from another consumer
        self._where = where

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(session_key={self.session_key!r}, "
            f"session_entry_id={self.session_entry_id!r}, inbox_id={self.inbox_id!r}, "
            f"message_id={self.message.message_id!r})"
        )

    def _ack_plan(self) -> Plan[bool]:
        w = self._where
        return plans.ack(w.config, w.recipient_id, w.group, w.consumer, self.inbox_id)

    def _reject_plan(self, reason: str) -> Plan[bool]:
        w = self._where
        return plans.reject(w.config, w.recipient_id, w.group, w.consumer, self.inbox_id, reason)


class InboxDelivery(_Delivery):
    """One message handed to this consumer; ``ack()`` when it is done."""

    __slots__ = ("_driver",)

    def __init__(self, driver: SyncDriver, where: _Where, entry: InboxEntry, claimed: bool) -> None:
        super().__init__(where, entry, claimed)
        self._driver = driver

    def ack(self) -> bool:
        """Acknowledge; False when this consumer no longer owns it (it was reclaimed)."""
        return self._driver.run(self._ack_plan())

    def reject(self, reason: str) -> bool:
        """Send it to the dead letters now, with ``reason``; False if no longer owned."""
        return self._driver.run(self._reject_plan(reason))


class AsyncInboxDelivery(_Delivery):
    """Async twin of :class:`InboxDelivery`."""

    __slots__ = ("_driver",)

    def __init__(
        self, driver: AsyncDriver, where: _Where, entry: InboxEntry, claimed: bool
    ) -> None:
        super().__init__(where, entry, claimed)
        self._driver = driver

    async def ack(self) -> bool:
        return await self._driver.run(self._ack_plan())

    async def reject(self, reason: str) -> bool:
        return await self._driver.run(self._reject_plan(reason))


def default_consumer() -> str:
    """A consumer name unique to this process and iterator."""
    return f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class _InboxState:
    """What both iterators share: settings, the held batch, when to reclaim, the next read."""

    def __init__(
        self,
        config: StoreConfig,
        recipient_id: str,
        *,
        group: str,
        consumer: str | None,
        batch: int,
        claim_idle: float,
        max_deliveries: int,
        wait: float | None,
    ) -> None:
        self.where = _Where(
            config,
            non_empty_str(recipient_id, "recipient_id"),
            non_empty_str(group, "group"),
            non_empty_str(consumer, "consumer") if consumer is not None else default_consumer(),
        )
        self.stream = config.keyspace.inbox(recipient_id).stream
        self.batch = positive_int(batch, "batch")
        self.claim_idle_ms = max(1, round(non_negative_number(claim_idle, "claim_idle") * 1000))
        self.claim_every = min(MAX_CLAIM_INTERVAL, self.claim_idle_ms / 2000)
        self.max_deliveries = positive_int(max_deliveries, "max_deliveries")
        self.wait = optional_seconds(wait, "wait")
        self.held: deque[Any] = deque()
        self.own_pending = True  # first re-read what this consumer name holds (a restart)
        self.next_claim = 0.0
        self.closed = False
        self.started = False
        self.undecodable: list[tuple[str, str]] = []

    @property
    def consumer(self) -> str:
        return self.where.consumer

    def reclaim_plan(self) -> Any:
        w = self.where
        self.next_claim = time.monotonic() + self.claim_every
        return plans.reclaim(
            w.config, w.recipient_id, w.group, w.consumer, self.claim_idle_ms, self.batch,
            self.max_deliveries,
        )  # fmt: skip

    def read_args(self, deadline: float | None, block_ms: int) -> tuple[Any, ...]:
        w = self.where
        block: tuple[Any, ...] = ()
        if self.own_pending:
            start = "0"
        else:
            remaining = block_ms if deadline is None else (deadline - time.monotonic()) * 1000
            start, block = ">", ("BLOCK", max(1, min(block_ms, int(remaining))))
        return ("XREADGROUP", "GROUP", w.group, w.consumer, "COUNT", self.batch, *block,
                "STREAMS", self.stream, start)  # fmt: skip

    def entries(self, rows: list[Any]) -> list[InboxEntry]:
        """Decoded rows; an undecodable one is noted for the dead letters, a gone one skipped."""
        out = []
        for row in rows:
            if row is None or row[1] is None:
                continue  # trimmed while pending (it was dead-lettered first)
            try:
                out.append(plans.decode_entry(self.where.config, row))
            except CodecError as exc:
                self.undecodable.append((as_text(row[0]), f"undecodable: {exc}"))
        return out

    def after_read(self, reply: Any, reconnected: bool) -> list[Any]:
        rows = reply[0][1] if reply else []
        if self.own_pending and len(rows) < self.batch:
            self.own_pending = False
        if reconnected:  # a lost XREADGROUP reply left entries pending for us: read them
            self.own_pending = True
        return list(rows)

    def expired(self, deadline: float | None) -> bool:
        return deadline is not None and time.monotonic() >= deadline


class Inbox(Closing):
    """Blocking iterator over one recipient's inbox, as one consumer of one group.

    Iterating blocks until a message arrives; it ends when ``close()`` is called or, with
    ``wait``, after ``wait`` seconds without a message.
    """

    _state: _InboxState

    def __init__(
        self,
        driver: SyncDriver,
        client: Any,
        config: StoreConfig,
        recipient_id: str,
        *,
        group: str,
        consumer: str | None,
        batch: int,
        claim_idle: float,
        max_deliveries: int,
        wait: float | None,
    ) -> None:
        self._state = _InboxState(
            config, recipient_id, group=group, consumer=consumer, batch=batch,
            claim_idle=claim_idle, max_deliveries=max_deliveries, wait=wait,
        )  # fmt: skip
        self._driver = driver
        self._client = client
        self._conn: BlockingConnection | None = None

    @property
    def consumer(self) -> str:
        return self._state.consumer

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> InboxDelivery:
        s = self._state
        if not s.started:
            self._driver.run(
                plans.ensure_group(s.where.config, s.where.recipient_id, s.where.group)
            )
            s.started = True
        deadline = None if s.wait is None else time.monotonic() + s.wait
        while not s.held:
            if s.closed or s.expired(deadline):
                raise StopIteration
            self._fill(deadline)
        item: InboxDelivery = s.held.popleft()
        return item

    def _fill(self, deadline: float | None) -> None:
        s = self._state
        if not s.own_pending and time.monotonic() >= s.next_claim:
            rows, _ = self._driver.run(s.reclaim_plan())
            self._hold(rows, claimed=True)
            if s.held:
                return
        if self._conn is None:
            self._conn = BlockingConnection(
                self._client, s.stream, self._driver.retry, "inbox read"
            )
        before = self._conn.reconnects
        reply = self._conn.call(*s.read_args(deadline, self._conn.block_ms))
        self._hold(s.after_read(reply, self._conn.reconnects != before), claimed=False)

    def _hold(self, rows: list[Any], *, claimed: bool) -> None:
        s = self._state
        for entry in s.entries(rows):
            s.held.append(InboxDelivery(self._driver, s.where, entry, claimed))
        while s.undecodable:
            inbox_id, reason = s.undecodable.pop()
            w = s.where
            self._driver.run(
                plans.reject(w.config, w.recipient_id, w.group, w.consumer, inbox_id, reason)
            )


class AsyncInbox(AsyncClosing):
    """Async twin of :class:`Inbox`; cancelling a task blocked in it leaves nothing behind."""

    _state: _InboxState

    def __init__(
        self,
        driver: AsyncDriver,
        client: Any,
        config: StoreConfig,
        recipient_id: str,
        *,
        group: str,
        consumer: str | None,
        batch: int,
        claim_idle: float,
        max_deliveries: int,
        wait: float | None,
    ) -> None:
        self._state = _InboxState(
            config, recipient_id, group=group, consumer=consumer, batch=batch,
            claim_idle=claim_idle, max_deliveries=max_deliveries, wait=wait,
        )  # fmt: skip
        self._driver = driver
        self._client = client
        self._conn: AsyncBlockingConnection | None = None

    @property
    def consumer(self) -> str:
        return self._state.consumer

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> AsyncInboxDelivery:
        s = self._state
        if not s.started:
            w = s.where
            await self._driver.run(plans.ensure_group(w.config, w.recipient_id, w.group))
            s.started = True
        deadline = None if s.wait is None else time.monotonic() + s.wait
        while not s.held:
            if s.closed or s.expired(deadline):
                raise StopAsyncIteration
            await self._fill(deadline)
        item: AsyncInboxDelivery = s.held.popleft()
        return item

    async def _fill(self, deadline: float | None) -> None:
        s = self._state
        if not s.own_pending and time.monotonic() >= s.next_claim:
            rows, _ = await self._driver.run(s.reclaim_plan())
            await self._hold(rows, claimed=True)
            if s.held:
                return
        if self._conn is None:
            self._conn = AsyncBlockingConnection(
                self._client, s.stream, self._driver.retry, "inbox read"
            )
        before = self._conn.reconnects
        try:
            reply = await self._conn.call(*s.read_args(deadline, self._conn.block_ms))
        except asyncio.CancelledError:
            self._conn = None  # closed by the cancellation; a later read opens a new one
            raise
        await self._hold(s.after_read(reply, self._conn.reconnects != before), claimed=False)

    async def _hold(self, rows: list[Any], *, claimed: bool) -> None:
        s = self._state
        for entry in s.entries(rows):
            s.held.append(AsyncInboxDelivery(self._driver, s.where, entry, claimed))
        while s.undecodable:
            inbox_id, reason = s.undecodable.pop()
            w = s.where
            plan = plans.reject(w.config, w.recipient_id, w.group, w.consumer, inbox_id, reason)
            await self._driver.run(plan)
