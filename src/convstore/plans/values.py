"""How plans turn times and replies into Redis values and back."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from convstore.errors import CodecError
from convstore.models import to_utc

__all__ = ["as_text", "epoch_micros", "from_epoch_micros", "ms_bound", "stored_int", "stream_order"]

#: What the scripts store (lua.py checks the same): counts of at most 15 digits, and
#: microsecond timestamps (``la``), which may be negative.
_COUNT = re.compile(rb"[0-9]{1,15}")
_MICROS = re.compile(rb"-?[0-9]{1,18}")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact; floats would round)."""
    return (moment - _EPOCH) // _MICROSECOND


def stored_int(value: object, field: str, *, signed: bool = False) -> int:
    """An integer as the scripts store it (``signed``: a timestamp), else :class:`CodecError`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raw = value.encode("utf-8", "replace") if isinstance(value, str) else value
    if not isinstance(raw, bytes) or not (_MICROS if signed else _COUNT).fullmatch(raw):
        raise CodecError(f"stored field {field!r} is not an integer: {value!r:.80}", path=field)
    return int(raw)


def from_epoch_micros(value: object, field: str = "la") -> datetime:
    """A stored microsecond timestamp as an aware datetime; garbage raises :class:`CodecError`."""
    micros = stored_int(value, field, signed=True)
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    except OverflowError:
        raise CodecError(f"stored field {field!r} is out of range: {micros}", path=field) from None


def as_text(value: bytes | str) -> str:
    """Redis replies are bytes (``decode_responses=False``); names and ids are UTF-8 text."""
    if isinstance(value, str):
        return value
    try:
        return value.decode()
    except (UnicodeDecodeError, AttributeError):
        raise CodecError(f"stored name is not UTF-8 text: {value!r:.80}") from None


def ms_bound(value: datetime | str | None, default: str, field: str) -> str:
    """A stream-id bound in milliseconds for ``value`` (``default`` when it is None)."""
    return default if value is None else str(max(0, epoch_micros(to_utc(value, field)) // 1000))


def stream_order(entry_id: str | bytes) -> tuple[int, int]:
    """(ms, seq) of a stream entry id, to compare ids in stream order ("ms" alone is
    "ms-0", as Redis reads it); ValueError for anything else."""
    ms, dash, seq = as_text(entry_id).partition("-")
    if not ms.isdigit() or (dash and not seq.isdigit()):
        raise ValueError(f"not a stream entry id: {entry_id!r:.60}")
    return int(ms), int(seq) if dash else 0
