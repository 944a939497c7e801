"""How plans turn times and replies into Redis values and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from convstore.models import to_utc

__all__ = ["as_text", "epoch_micros", "from_epoch_micros", "ms_bound"]


def epoch_micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact; floats would round)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_micros(value: bytes | str | int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(value))


def as_text(value: bytes | str) -> str:
    """Redis replies are bytes (``decode_responses=False``); names and ids are UTF-8 text."""
    return value.decode() if isinstance(value, bytes) else value


def ms_bound(value: datetime | str | None, default: str, field: str) -> str:
    """A stream-id bound in milliseconds for ``value`` (``default`` when it is None)."""
    return default if value is None else str(max(0, epoch_micros(to_utc(value, field)) // 1000))
