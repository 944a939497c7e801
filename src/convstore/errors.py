"""Every exception convstore raises, in one place.

Callers catch :class:`ConvstoreError` for "anything from convstore", or a precise
subclass. Validation problems subclass :class:`ValueError` so code written against
the spec (``except ValueError``) keeps working.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

__all__ = [
    "AuthenticationFailed",
    "ClusterError",
    "CodecError",
    "ConcurrentModification",
    "ConfigurationError",
    "ConvstoreError",
    "DurabilityNotMet",
    "DurabilityUnsupported",
    "MessageNotFound",
    "PermissionDenied",
    "ProtocolError",
    "SessionExists",
    "SessionKeyConflict",
    "SessionNotFound",
    "StaleAppend",
    "StoreError",
    "StoreUnavailable",
    "UnexpectedReply",
    "ValidationError",
]

Outcome = Literal["not_sent", "unknown"]


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
    """The session key names no stored session.

    ``suggestions`` are stored keys that start with ``session_key + "_"``: the caller
    probably passed a session id where the session key was meant.
    """

    def __init__(self, session_key: str, suggestions: Iterable[str] = ()) -> None:
        self.suggestions: tuple[str, ...] = tuple(suggestions)
        message = f"no session stored under key {session_key!r}"
        if self.suggestions:
            names = " or ".join(repr(s) for s in self.suggestions)
            message += (
                f"; did you mean {names}? (a session key is session_id + '_' + the roles; "
                "save() returns it)"
            )
        super().__init__(message)
        self.session_key = session_key


class SessionKeyConflict(ConvstoreError):
    """A different session already owns this session key (the spec's key scheme collides)."""

    def __init__(self, session_key: str, detail: str = "") -> None:
        msg = f"session key {session_key!r} already belongs to a different session"
        super().__init__(f"{msg}: {detail}" if detail else msg)
        self.session_key = session_key


class MessageNotFound(ConvstoreError, LookupError):
    """No message of the session has this message id or stream entry id."""

    def __init__(self, session_key: str, point: str) -> None:
        super().__init__(
            f"session {session_key!r} holds no message with message id or entry id {point!r}"
        )
        self.session_key = session_key
        self.point = point


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


class StaleAppend(ConcurrentModification):
    """A session's stream did not end where the caller expected: someone appended since
    (``append(..., expect_last=...)``, or a layout migration raced by appends).

    ``expected``/``actual`` are stream entry ids (``"0-0"`` = no message); read the
    history again and decide whether to retry.
    """

    def __init__(self, session_key: str, expected: str, actual: str) -> None:
        ConvstoreError.__init__(
            self,
            f"session {session_key!r} ends at entry {actual}, the caller expected {expected}; "
            "nothing was written (read the new messages and retry)",
        )
        self.session_key = session_key
        self.expected = expected  # type: ignore[assignment]
        self.actual = actual  # type: ignore[assignment]


class DurabilityUnsupported(ConfigurationError):
    """``durability="fsync"`` needs WAITAOF (Redis/Valkey >= 7.2) and ``appendonly yes``."""


class SessionExists(ConcurrentModification):
    """A session is already stored under this key: ``create()``, or ``save()`` of a new object.

    A :class:`ConcurrentModification` (the copy expected no stored revision), so code that
    catches that keeps working.
    """

    def __init__(self, session_key: str, actual: int) -> None:
        ConvstoreError.__init__(
            self,
            f"a session is already stored under key {session_key!r} (revision {actual}); to "
            "change it, get() it and save() the copy, or save(session, force=True) to "
            "overwrite it",
        )
        self.session_key = session_key
        self.expected = 0
        self.actual = actual


class StoreUnavailable(ConvstoreError, ConnectionError):
    """Redis could not be reached or did not answer in time, after the store's retries.

    ``outcome`` says what may have happened: ``"not_sent"`` (no command of this
    operation reached the server: nothing changed) or ``"unknown"`` (a command was
    sent and its reply was lost: the write may have been applied). After
    ``"unknown"``, retry an append with the same ``message_id``: it is stored once.
    """

    def __init__(self, message: str, *, outcome: Outcome = "unknown") -> None:
        if outcome == "unknown":
            message += (
                " (a command was sent and its outcome is unknown: the write may have been "
                "applied; retry appends with the same message_id, they are stored once)"
            )
        else:
            message += " (nothing was sent: nothing changed)"
        super().__init__(message)
        self.outcome: Outcome = outcome

    @property
    def sent(self) -> bool:
        """False only when nothing of this operation reached the server."""
        return self.outcome != "not_sent"


class StoreError(ConvstoreError):
    """Redis refused a command (for example WRONGTYPE: another program wrote to a convstore key)."""


class UnexpectedReply(StoreError):
    """The server answered something convstore cannot read (e.g. garbage in HELLO or INFO)."""


class PermissionDenied(StoreError, PermissionError):
    """The server's ACL does not let this user run a command or touch a key (NOPERM)."""


class AuthenticationFailed(StoreError, PermissionError):
    """Wrong user name or password, or the server wants a password (WRONGPASS / NOAUTH)."""


class ProtocolError(StoreError):
    """The reply was not Redis protocol: something else listens on that port, or a proxy broke it."""


class ClusterError(StoreError):
    """Redis Cluster refused the command or could not route it (slots not covered, MOVED loop)."""


class DurabilityNotMet(StoreError):
    """The write WAS applied on the primary, but fewer replicas (or fsyncs) acknowledged it in time.

    ``result`` is what the operation returned (for example the ``AppendResult`` list);
    ``requested`` and ``acknowledged`` count replicas (or, for ``what == "fsync"``,
    local AOF fsyncs). Retrying an append with the same ids stores nothing twice.
    """

    def __init__(
        self, message: str, *, what: str, requested: int, acknowledged: int, result: Any
    ) -> None:
        super().__init__(message)
        self.what = what
        self.requested = requested
        self.acknowledged = acknowledged
        self.result = result
