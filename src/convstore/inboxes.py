"""``store.inboxes``: delivery upkeep and dead letters; ``store.inbox(...)`` consumes.

Delivery happens inside ``messages.append`` when the store has ``inboxes=True``. What is
here is for the rest: delivering one session by hand, the sweeper that repairs deliveries
a crash interrupted (:meth:`InboxRepository.repair`, to call periodically), reading the
dead letters, and opening a consumer (:meth:`InboxRepository.consume`).
"""

from __future__ import annotations

from convstore.drivers import AsyncDriver, SyncDriver
from convstore.inbox import AsyncInbox, Inbox
from convstore.plans import inbox as plans
from convstore.plans.config import StoreConfig, seconds_to_ms
from convstore.plans.inbox import DeadLetter, InboxStatus
from convstore.validation import limit_or_all, non_negative_number, positive_int

__all__ = ["DEFAULT_GROUP", "AsyncInboxRepository", "InboxRepository"]

DEFAULT_GROUP = "workers"


def _repair_args(older_than: float, limit: int) -> tuple[int, int]:
    non_negative_number(older_than, "older_than")
    return (0 if older_than == 0 else seconds_to_ms(older_than, "older_than")), positive_int(
        limit, "limit"
    )


def _dead_limit(limit: int) -> int:
    found = limit_or_all(limit)
    return 10_000 if found is None else found


class InboxRepository:
    """Inbox upkeep for the blocking store."""

    def __init__(self, driver: SyncDriver, config: StoreConfig) -> None:
        self._driver = driver
        self._config = config

    def consume(
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
        """Iterate ``recipient_id``'s inbox as ``consumer`` (default: a unique name) of
        ``group``; see :class:`convstore.inbox.Inbox`. ``claim_idle``: seconds before a
        message another consumer did not ack is reclaimed; ``max_deliveries``: deliveries
        before it goes to the dead letters; ``batch``: most messages held at once;
        ``wait``: end after this many seconds without a message (None: never)."""
        return Inbox(
            self._driver, self._driver.client, self._config, recipient_id, group=group,
            consumer=consumer, batch=batch, claim_idle=claim_idle,
            max_deliveries=max_deliveries, wait=wait,
        )  # fmt: skip

    def deliver(self, key: str) -> int:
        """Deliver the session's undelivered agent messages now; returns how many were new."""
        return self._driver.run(plans.deliver_session(self._config, key))

    def repair(self, *, older_than: float = 30.0, limit: int = 100) -> int:
        """The sweeper: finish deliveries that a crash interrupted, for up to ``limit``
        sessions appended to at least ``older_than`` seconds ago. Call it periodically (the
        demo and the tests call it directly); returns how many messages it delivered."""
        ms, most = _repair_args(older_than, limit)
        return self._driver.run(plans.repair(self._config, ms, most))

    def delete(self, recipient_id: str) -> bool:
        """Delete ``recipient_id``'s inbox, groups and dead letters; False if it had none."""
        return self._driver.run(plans.delete_inbox(self._config, recipient_id))

    def dead_letters(self, recipient_id: str, limit: int = 50) -> list[DeadLetter]:
        """The newest ``limit`` dead letters of ``recipient_id``, oldest first."""
        return self._driver.run(plans.dead_letters(self._config, recipient_id, _dead_limit(limit)))

    def status(self, recipient_id: str) -> InboxStatus:
        """Entries held, dead letters, and per group what is pending and acknowledged."""
        return self._driver.run(plans.inbox_status(self._config, recipient_id))


class AsyncInboxRepository:
    """Async twin of :class:`InboxRepository`."""

    def __init__(self, driver: AsyncDriver, config: StoreConfig) -> None:
        self._driver = driver
        self._config = config

    def consume(
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
        """Async twin of :meth:`InboxRepository.consume` (an async iterator)."""
        return AsyncInbox(
            self._driver, self._driver.client, self._config, recipient_id, group=group,
            consumer=consumer, batch=batch, claim_idle=claim_idle,
            max_deliveries=max_deliveries, wait=wait,
        )  # fmt: skip

    async def deliver(self, key: str) -> int:
        return await self._driver.run(plans.deliver_session(self._config, key))

    async def repair(self, *, older_than: float = 30.0, limit: int = 100) -> int:
        ms, most = _repair_args(older_than, limit)
        return await self._driver.run(plans.repair(self._config, ms, most))

    async def delete(self, recipient_id: str) -> bool:
        return await self._driver.run(plans.delete_inbox(self._config, recipient_id))

    async def dead_letters(self, recipient_id: str, limit: int = 50) -> list[DeadLetter]:
        plan = plans.dead_letters(self._config, recipient_id, _dead_limit(limit))
        return await self._driver.run(plan)

    async def status(self, recipient_id: str) -> InboxStatus:
        return await self._driver.run(plans.inbox_status(self._config, recipient_id))
