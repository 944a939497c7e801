"""Every exception convstore raises, in one place.

Callers catch :class:`ConvstoreError` for "anything from convstore", or a precise
subclass. Validation problems subclass :class:`ValueError` so code written against
the spec (``except ValueError``) keeps working.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "CodecError",
    "ConcurrentModification",
    "ConfigurationError",
    "ConvstoreError",
    "SessionKeyConflict",
    "SessionNotFound",
    "StoreError",
    "StoreUnavailable",
    "ValidationError",
]


class ConvstoreError(Exception):
    """Base class of every convstore error."""


class ValidationError(ConvstoreError, ValueError):
    """A value was rejected at construction.

    ``field`` names it; ``allowed`` lists the legal values where there is a fixed set.
    """

    def __init__(self, message: str, *, field: str, allowed: Iterable[str] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.allowed: tuple[str, ...] | None = tuple(allowed) if allowed is not None else None


class CodecError(ConvstoreError, ValueError):
    """Bytes could not be produced or read; ``path`` is the key path of the offending value.

    On reads, ``key`` is the session key (or index) holding the damaged record and
    ``entry_id`` the stream entry id when the damage is in one message.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str = "",
        key: str | None = None,
        entry_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.key = key
        self.entry_id = entry_id


class ConfigurationError(ConvstoreError, ValueError):
    """The store or client was configured in a way convstore cannot work with."""


class SessionNotFound(ConvstoreError, LookupError):
    """The session key names no stored session."""

    def __init__(self, session_key: str) -> None:
        super().__init__(f"no session stored under key {session_key!r}")
        self.session_key = session_key


class SessionKeyConflict(ConvstoreError):
    """A different session already owns this session key (the spec's key scheme collides)."""

    def __init__(self, session_key: str, detail: str = "") -> None:
        msg = f"session key {session_key!r} already belongs to a different session"
        super().__init__(f"{msg}: {detail}" if detail else msg)
        self.session_key = session_key


class ConcurrentModification(ConvstoreError):
    """The stored session changed since this copy was read; reload it and retry."""

    def __init__(self, session_key: str, expected: int, actual: int) -> None:
        super().__init__(
            f"session {session_key!r} is at revision {actual}, this copy was read at revision "
            f"{expected}; get() it again and reapply the change"
        )
        self.session_key = session_key
        self.expected = expected
        self.actual = actual


class StoreUnavailable(ConvstoreError, ConnectionError):
    """Redis could not be reached or did not answer in time; nothing was stored."""


class StoreError(ConvstoreError):
    """Redis refused a command (for example WRONGTYPE: another program wrote to a convstore key)."""
