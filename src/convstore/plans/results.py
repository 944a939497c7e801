"""What store operations return."""

from __future__ import annotations

from typing import Any, NamedTuple

from convstore.models import ConversationSession

__all__ = ["AppendResult", "HistoryPage", "SessionPage"]


class AppendResult(NamedTuple):
    """What an append stored: the message id, its stream entry id, and False for a retried id."""

    message_id: str
    entry_id: str
    created: bool


class HistoryPage(NamedTuple):
    """A page of history, oldest first; pass ``cursor`` as ``before`` for the previous page."""

    items: list[dict[str, Any]]
    cursor: str | None


class SessionPage(NamedTuple):
    """Sessions by most recent activity; pass ``cursor`` back for the next page."""

    items: list[ConversationSession]
    cursor: str | None
