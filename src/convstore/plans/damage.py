"""Damaged records on read: name them, or skip and report them when the caller asks.

Every value read back from Redis goes through a checked decoder (``values.py``, the
codec) that raises :class:`CodecError`; the plans add where it was (session key,
stream entry id) with :func:`located`. With ``on_error="skip"`` a read leaves the
damaged record out and reports it three ways: on the result (``skipped``), as a
WARNING on the ``convstore`` logger, and as the ``store.skipped`` metric.
"""

from __future__ import annotations

from typing import Any, Literal

from convstore import monitoring
from convstore.errors import CodecError, SessionNotFound, ValidationError

__all__ = ["ON_ERROR_CHOICES", "OnError", "Skips", "check_on_error", "located", "script_status"]

OnError = Literal["raise", "skip"]
ON_ERROR_CHOICES: tuple[OnError, ...] = ("raise", "skip")


def check_on_error(value: object) -> OnError:
    if value not in ON_ERROR_CHOICES:
        raise ValidationError(
            f"on_error must be 'raise' or 'skip', got {value!r}",
            field="on_error",
            allowed=ON_ERROR_CHOICES,
        )
    return value


def located(
    exc: CodecError, key: str, entry_id: str | None = None, kind: str = "session"
) -> CodecError:
    """``exc`` again, with the key (and entry id) that holds the damaged bytes."""
    where = f"{kind} {key!r}" + (f", stream entry {entry_id}" if entry_id else "")
    found = CodecError(f"{where}: {exc}", path=exc.path, key=key, entry_id=entry_id)
    found.__cause__ = exc
    return found


class Skips:
    """What one read skipped; raises instead when the caller did not ask to skip."""

    def __init__(self, on_error: object, operation: str) -> None:
        self.skip = check_on_error(on_error) == "skip"
        self.operation = operation
        self.errors: list[CodecError] = []

    def add(self, exc: CodecError) -> None:
        if not self.skip:
            raise exc
        self.errors.append(exc)
        monitoring.logger.warning("convstore %s skipped a damaged record: %s", self.operation, exc)
        monitoring.emit("store.skipped", 1, {"operation": self.operation})


#: Statuses every session script can return (see lua.py).
NOT_FOUND, DAMAGED = -1, -4


def script_status(reply: Any, key: str) -> int:
    """The status of a session script's reply; -1 and -4 become typed errors."""
    status = int(reply[0])
    if status == NOT_FOUND:
        raise SessionNotFound(key)
    if status == DAMAGED:
        field, value = reply[1], bytes(reply[2])
        name = field.decode("ascii", "replace") if isinstance(field, bytes) else str(field)
        raise CodecError(
            f"session {key!r} is damaged: stored field {name!r} holds {value!r}, which is not "
            "what convstore writes there; nothing was written (fix or delete the session)",
            path=name,
            key=key,
        )
    return status
