"""What store operations return."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from convstore.errors import CodecError
from convstore.isotime import utc_isoformat
from convstore.message_ids import decode_message_id
from convstore.models import ConversationSession

__all__ = ["AppendResult", "HistoryPage", "Records", "SessionPage", "StoredMessage"]

T = TypeVar("T")


class AppendResult(NamedTuple):
    """What an append stored: the message id, its stream entry id, and False for a retried id."""

    message_id: str
    entry_id: str
    created: bool


class StoredMessage(NamedTuple):
    """One stored message as ``messages.read`` returns it: typed values, no text made.

    ``timestamp`` is the aware UTC datetime that was stored, ``metadata`` the stored
    metadata (without ``message_id``), ``stored_id`` the message id in its stored form
    (``codec.encode_message_id``): :attr:`message_id` turns it into text when asked.
    :meth:`as_dict` is the ContextEngine dict ``history()`` returns for the same entry.
    """

    role: str
    content: str
    timestamp: datetime
    metadata: dict[str, Any]
    stored_id: bytes

    @property
    def message_id(self) -> str:
        return decode_message_id(self.stored_id)

    def as_dict(self) -> dict[str, Any]:
        """``{role, content, timestamp (ISO text), metadata (with message_id)}``, new each call."""
        return {
            "role": self.role,
            "content": self.content,
            "timestamp": utc_isoformat(self.timestamp),
            "metadata": {**self.metadata, "message_id": self.message_id},
        }


class Records(list[T]):
    """A plain list of what a read returned, plus ``skipped``: the damaged records it left out.

    ``skipped`` is empty unless the read was called with ``on_error="skip"``; each item is
    the :class:`CodecError` that would have been raised (``key``, ``entry_id``, message).
    """

    skipped: tuple[CodecError, ...]

    def __init__(self, items: Iterable[T] = (), skipped: Iterable[CodecError] = ()) -> None:
        super().__init__(items)
        self.skipped = tuple(skipped)


class HistoryPage(NamedTuple):
    """A page of history, oldest first; pass ``cursor`` as ``before`` for the previous page.

    ``skipped``: damaged entries of this page left out under ``on_error="skip"``.
    """

    items: list[dict[str, Any]]
    cursor: str | None

    @property
    def skipped(self) -> tuple[CodecError, ...]:
        return _skipped(self.items)


class SessionPage(NamedTuple):
    """Sessions by most recent activity; pass ``cursor`` back for the next page.

    ``skipped``: damaged sessions left out under ``on_error="skip"``.
    """

    items: list[ConversationSession]
    cursor: str | None

    @property
    def skipped(self) -> tuple[CodecError, ...]:
        return _skipped(self.items)


def _skipped(items: list[Any]) -> tuple[CodecError, ...]:
    """The page's items are :class:`Records` when a plan built them (a plain list otherwise)."""
    return items.skipped if isinstance(items, Records) else ()
