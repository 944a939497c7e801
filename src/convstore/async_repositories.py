"""The async twins of ``repositories.py``: the same methods, name for name, awaiting the
asyncio driver (``tests/test_sync_async_parity.py`` checks that they match)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from convstore import plans
from convstore.drivers import AsyncDriver
from convstore.follow import AsyncFollower
from convstore.models import AgentCommunicationMessage, ConversationSession
from convstore.plans import (
    AppendResult,
    HistoryPage,
    OnError,
    Records,
    Retention,
    SessionPage,
    StoredMessage,
    edits,
)
from convstore.plans.inbox import append_plan
from convstore.plans.inspect import Entry, SessionRetention, entries, session_retention
from convstore.repository_base import Message, Moment, Repository

__all__ = ["AsyncMessageRepository", "AsyncSessionRepository"]


class AsyncSessionRepository(Repository):
    """Async twin of :class:`SessionRepository`."""

    _driver: AsyncDriver

    async def create(
        self, session: ConversationSession, *, wait_replicas: int | None = None
    ) -> str:
        return await self._driver.run(
            plans.create_session(self._config, session), wait_replicas=wait_replicas
        )

    async def save(
        self, session: ConversationSession, *, force: bool = False, wait_replicas: int | None = None
    ) -> str:
        return await self._driver.run(
            plans.save_session(self._config, session, force), wait_replicas=wait_replicas
        )

    async def get(self, key: str) -> ConversationSession | None:
        return await self._driver.run(plans.get_session(self._config, key))

    async def exists(self, key: str) -> bool:
        return await self._driver.run(plans.session_exists(self._config, key))

    async def touch(self, key: str) -> datetime:
        return await self._driver.run(plans.touch_session(self._config, key))

    async def delete(self, key: str) -> bool:
        return await self._driver.run(plans.delete_session(self._config, key))

    async def list(
        self,
        participant_id: str | None = None,
        session_type: str | None = None,
        *,
        limit: int | None = 50,
        cursor: str | None = None,
        on_error: OnError = "raise",
    ) -> SessionPage:
        return await self._driver.run(
            plans.list_sessions(self._config, participant_id, session_type, limit, cursor, on_error)
        )

    async def set_retention(self, key: str, retention: Retention | None) -> None:
        await self._driver.run(plans.set_retention(self._config, key, retention))

    async def retention(self, key: str) -> SessionRetention:
        return await self._driver.run(session_retention(self._config, key))


class AsyncMessageRepository(Repository):
    """Async twin of :class:`MessageRepository`."""

    _driver: AsyncDriver

    async def append(
        self,
        key: str,
        message: Message,
        *,
        expect_last: str | None = None,
        wait_replicas: int | None = None,
    ) -> AppendResult:
        plan = append_plan(self._config, key, (message,), expect_last=expect_last)
        return (await self._driver.run(plan, wait_replicas=wait_replicas))[0]

    async def append_many(
        self,
        key: str,
        messages: Iterable[Message],
        *,
        expect_last: str | None = None,
        wait_replicas: int | None = None,
    ) -> list[AppendResult]:
        plan = append_plan(self._config, key, messages, expect_last=expect_last)
        return await self._driver.run(plan, wait_replicas=wait_replicas)

    async def history(
        self,
        key: str,
        limit: int | None = None,
        *,
        since: Moment = None,
        until: Moment = None,
        on_error: OnError = "raise",
    ) -> Records[dict[str, Any]]:
        return await self._driver.run(
            plans.history(self._config, key, limit, since, until, on_error)
        )

    async def read(
        self,
        key: str,
        limit: int | None = None,
        *,
        since: Moment = None,
        until: Moment = None,
        on_error: OnError = "raise",
    ) -> Records[StoredMessage]:
        plan = plans.read_messages(self._config, key, limit, since, until, on_error)
        return await self._driver.run(plan)

    async def last(self, key: str, n: int) -> Records[dict[str, Any]]:
        return await self.history(key, n)

    async def page(
        self,
        key: str,
        before: str | None = None,
        limit: int | None = 50,
        *,
        on_error: OnError = "raise",
    ) -> HistoryPage:
        return await self._driver.run(plans.page(self._config, key, before, limit, on_error))

    async def agent_messages(
        self,
        key: str,
        message_types: Iterable[str] | None = None,
        sender_id: str | None = None,
        limit: int | None = None,
        *,
        on_error: OnError = "raise",
    ) -> Records[AgentCommunicationMessage]:
        return await self._driver.run(
            plans.agent_messages(
                self._config, key, message_types, sender_id, limit, on_error=on_error
            )
        )

    async def entries(
        self,
        key: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 100,
        on_error: OnError = "raise",
    ) -> Records[Entry]:
        return await self._driver.run(entries(self._config, key, after, before, limit, on_error))

    def follow(
        self, key: str, *, after: str | None = None, wait: float | None = None, batch: int = 100
    ) -> AsyncFollower:
        """Async twin of ``MessageRepository.follow`` (an async iterator; cancellation ends it)."""
        return AsyncFollower(
            self._driver,
            self._driver.client,
            self._config,
            key,
            after=after,
            wait=wait,
            batch=batch,
        )

    async def count(self, key: str) -> int:
        return await self._driver.run(plans.count(self._config, key))

    async def delete_message(self, key: str, message_id: str) -> bool:
        return await self._driver.run(plans.delete_message(self._config, key, message_id))

    async def clear(self, key: str) -> int:
        return await self._driver.run(plans.clear(self._config, key))

    async def pop(self, key: str) -> dict[str, Any] | None:
        return await self._driver.run(edits.pop(self._config, key))

    async def truncate_after(self, key: str, entry_or_message_id: str) -> int:
        return await self._driver.run(edits.truncate_after(self._config, key, entry_or_message_id))

    async def fork(
        self, key: str, new_session: ConversationSession, upto: str | None = None
    ) -> str:
        return await self._driver.run(edits.fork(self._config, key, new_session, upto))
