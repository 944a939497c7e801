"""The repository layer: what callers use; how it is stored stays behind it.

Each method is one line: build the plan (``plans.py``), hand it to the driver. The async
twins (``async_repositories.py``) mirror these name for name; ``tests/test_sync_async_parity.py``
checks that they do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from convstore import plans
from convstore.drivers import SyncDriver
from convstore.follow import Follower
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

__all__ = ["MessageRepository", "SessionRepository"]


class SessionRepository(Repository):
    """Sessions: one Redis hash each, listed through sorted-set indexes by last activity."""

    _driver: SyncDriver

    def create(self, session: ConversationSession, *, wait_replicas: int | None = None) -> str:
        """Store a new session; :class:`SessionExists` if one is already stored under its key."""
        return self._driver.run(
            plans.create_session(self._config, session), wait_replicas=wait_replicas
        )

    def save(
        self, session: ConversationSession, *, force: bool = False, wait_replicas: int | None = None
    ) -> str:
        """Create or update; returns the session key and sets ``session.revision``.

        Raises :class:`SessionKeyConflict` if a *different* session owns the key, and
        :class:`ConcurrentModification` if the stored session changed since this copy
        was read: :class:`SessionExists` for a freshly built copy of a stored session.
        ``force=True`` skips only the revision check (an upsert). ``wait_replicas``
        overrides the store's write concern for this call.
        """
        return self._driver.run(
            plans.save_session(self._config, session, force), wait_replicas=wait_replicas
        )

    def get(self, key: str) -> ConversationSession | None:
        return self._driver.run(plans.get_session(self._config, key))

    def exists(self, key: str) -> bool:
        return self._driver.run(plans.session_exists(self._config, key))

    def touch(self, key: str) -> datetime:
        """Mark activity now and refresh the TTL; returns the new ``last_activity``."""
        return self._driver.run(plans.touch_session(self._config, key))

    def delete(self, key: str) -> bool:
        """Delete the session, its history and its index entries; False if there was none."""
        return self._driver.run(plans.delete_session(self._config, key))

    def list(
        self,
        participant_id: str | None = None,
        session_type: str | None = None,
        *,
        limit: int | None = 50,
        cursor: str | None = None,
        on_error: OnError = "raise",
    ) -> SessionPage:
        """Most recently active first; pass the returned ``cursor`` back for the next page.

        A damaged session raises :class:`CodecError` naming it; ``on_error="skip"`` leaves
        it out and reports it in ``SessionPage.skipped`` (and a logged warning).
        """
        return self._driver.run(
            plans.list_sessions(self._config, participant_id, session_type, limit, cursor, on_error)
        )

    def set_retention(self, key: str, retention: Retention | None) -> None:
        """Override the store's retention for one session (None restores the defaults)."""
        self._driver.run(plans.set_retention(self._config, key, retention))

    def retention(self, key: str) -> SessionRetention:
        """The session's effective retention, which fields it overrides, and its TTL left."""
        return self._driver.run(session_retention(self._config, key))


class MessageRepository(Repository):
    """Histories: one append-only Redis stream per session, ContextEngine dicts out."""

    _driver: SyncDriver

    def append(
        self,
        key: str,
        message: Message,
        *,
        expect_last: str | None = None,
        wait_replicas: int | None = None,
    ) -> AppendResult:
        """Store one message atomically; a retried ``message_id`` writes nothing.

        ``expect_last``: append only if the session's newest entry id is this one
        (``"0-0"`` = empty), else :class:`StaleAppend`. ``wait_replicas`` overrides the
        store's write concern for this call.
        """
        plan = append_plan(self._config, key, (message,), expect_last=expect_last)
        return self._driver.run(plan, wait_replicas=wait_replicas)[0]

    def append_many(
        self,
        key: str,
        messages: Iterable[Message],
        *,
        expect_last: str | None = None,
        wait_replicas: int | None = None,
    ) -> list[AppendResult]:
        """Store several messages in one round trip, all or nothing (retried as one)."""
        plan = append_plan(self._config, key, messages, expect_last=expect_last)
        return self._driver.run(plan, wait_replicas=wait_replicas)

    def history(
        self,
        key: str,
        limit: int | None = None,
        *,
        since: Moment = None,
        until: Moment = None,
        on_error: OnError = "raise",
    ) -> Records[dict[str, Any]]:
        """Chronological ``{role, content, timestamp, metadata}``; ``limit`` = the newest N.

        A damaged entry raises :class:`CodecError` naming the key and entry id;
        ``on_error="skip"`` leaves it out and lists it in the result's ``skipped``.
        """
        return self._driver.run(plans.history(self._config, key, limit, since, until, on_error))

    def read(
        self,
        key: str,
        limit: int | None = None,
        *,
        since: Moment = None,
        until: Moment = None,
        on_error: OnError = "raise",
    ) -> Records[StoredMessage]:
        """:meth:`history` as typed :class:`StoredMessage` values: the timestamp a datetime,
        the message id made text only when asked for, ``as_dict()`` the history form. The
        faster read for code that wants the values, not ContextEngine's text."""
        plan = plans.read_messages(self._config, key, limit, since, until, on_error)
        return self._driver.run(plan)

    def last(self, key: str, n: int) -> Records[dict[str, Any]]:
        return self.history(key, n)

    def page(
        self,
        key: str,
        before: str | None = None,
        limit: int | None = 50,
        *,
        on_error: OnError = "raise",
    ) -> HistoryPage:
        """Walk backwards: the page before ``before`` (a cursor from the previous page)."""
        return self._driver.run(plans.page(self._config, key, before, limit, on_error))

    def agent_messages(
        self,
        key: str,
        message_types: Iterable[str] | None = None,
        sender_id: str | None = None,
        limit: int | None = None,
        *,
        on_error: OnError = "raise",
    ) -> Records[AgentCommunicationMessage]:
        """Agent messages, filtered first, then the newest ``limit``, oldest first."""
        return self._driver.run(
            plans.agent_messages(
                self._config, key, message_types, sender_id, limit, on_error=on_error
            )
        )

    def entries(
        self,
        key: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 100,
        on_error: OnError = "raise",
    ) -> Records[Entry]:
        """Up to ``limit`` messages with their stream entry ids, oldest first: the first
        ones after the entry id ``after``, else the newest ones before ``before``."""
        return self._driver.run(entries(self._config, key, after, before, limit, on_error))

    def follow(
        self, key: str, *, after: str | None = None, wait: float | None = None, batch: int = 100
    ) -> Follower:
        """A live tail: iterate the messages appended after ``after`` (an entry id; None:
        from now on) as they arrive. Blocks on a connection of its own; ends on ``close()``
        or after ``wait`` seconds without a message. ``follower.cursor`` resumes it."""
        return Follower(
            self._driver,
            self._driver.client,
            self._config,
            key,
            after=after,
            wait=wait,
            batch=batch,
        )

    def count(self, key: str) -> int:
        return self._driver.run(plans.count(self._config, key))

    def delete_message(self, key: str, message_id: str) -> bool:
        """Remove one message by id; order and TTL of the rest are kept."""
        return self._driver.run(plans.delete_message(self._config, key, message_id))

    def clear(self, key: str) -> int:
        """Drop the whole history but keep the session; returns how many messages went."""
        return self._driver.run(plans.clear(self._config, key))

    def pop(self, key: str) -> dict[str, Any] | None:
        """Remove and return the newest message, atomically (None when the history is empty)."""
        return self._driver.run(edits.pop(self._config, key))

    def truncate_after(self, key: str, entry_or_message_id: str) -> int:
        """Rewind: remove every message after the given one (it stays), atomically.

        The point is a message id, else a stream entry id (``page().cursor`` form);
        :class:`MessageNotFound` if it names neither. Returns how many were removed.
        """
        return self._driver.run(edits.truncate_after(self._config, key, entry_or_message_id))

    def fork(self, key: str, new_session: ConversationSession, upto: str | None = None) -> str:
        """Copy the history up to ``upto`` (inclusive) into a new session; returns its key.

        Resumable: calling it again after a failure completes the copy without duplicates.
        """
        return self._driver.run(edits.fork(self._config, key, new_session, upto))
