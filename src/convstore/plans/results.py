"""What store operations return."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple, TypeVar

from convstore.errors import CodecError
from convstore.models import ConversationSession

__all__ = ["AppendResult", "HistoryPage", "Records", "SessionPage"]

T = TypeVar("T")


class AppendResult(NamedTuple):
    """What an append stored: the message id, its stream entry id, and False for a retried id."""

    message_id: str
    entry_id: str
    created: bool


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
