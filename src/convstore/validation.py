"""One checker per validation rule, shared by every module that needs it.

Each returns the checked value (so callers can write ``n = positive_int(n, "limit")``)
or raises :class:`ValidationError` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from convstore.errors import ValidationError

__all__ = [
    "limit_or_all",
    "non_empty_str",
    "non_negative_int",
    "non_negative_number",
    "optional_positive_int",
    "optional_seconds",
    "positive_int",
    "str_dict",
    "stream_id_arg",
    "stream_id_or_none",
    "within_limit",
]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def non_empty_str(value: object, field: str) -> str:
    """A non-empty ``str``."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{field} must be a non-empty string", field=field)
    return value


def positive_int(value: object, field: str) -> int:
    """An ``int`` >= 1 (``bool`` is refused)."""
    if not _is_int(value) or value < 1:  # type: ignore[operator]
        raise ValidationError(f"{field} must be a positive integer", field=field)
    return value  # type: ignore[return-value]


_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


def stream_id_or_none(value: object, field: str) -> str | None:
    """``None`` or a stream entry id (:func:`stream_id_arg`), used as a cursor."""
    return None if value is None else stream_id_arg(value, field)


def optional_positive_int(value: object, field: str) -> int | None:
    """``None`` or an ``int`` >= 1."""
    if value is not None and (not _is_int(value) or value < 1):  # type: ignore[operator]
        raise ValidationError(f"{field} must be a positive integer or None", field=field)
    return value  # type: ignore[return-value]


def limit_or_all(value: object, field: str = "limit") -> int | None:
    """The one meaning of ``limit`` in the native API: ``None`` = all, else an ``int`` >= 1.

    ``0`` is refused rather than read as "all" or "none" (the ContextEngine adapter alone
    keeps the reference's ``0`` = all, and converts before calling the store).
    """
    if value is None:
        return None
    if not _is_int(value) or value < 1:  # type: ignore[operator]
        hint = "; use None for all" if value == 0 and _is_int(value) else ""
        raise ValidationError(
            f"{field} must be a positive integer or None (all), got {value!r}{hint}", field=field
        )
    return value  # type: ignore[return-value]


def non_negative_int(value: object, field: str, *, hint: str = "") -> int:
    """An ``int`` >= 0; ``hint`` is appended to the message (for example ``" (0 = all)"``)."""
    if not _is_int(value) or value < 0:  # type: ignore[operator]
        raise ValidationError(f"{field} must be a non-negative integer{hint}", field=field)
    return value  # type: ignore[return-value]


def non_negative_number(value: object, field: str) -> float:
    """An ``int`` or ``float`` >= 0, as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValidationError(f"{field} must be a non-negative number", field=field)
    return float(value)


def optional_seconds(value: float | timedelta | None, field: str) -> float | None:
    """``None`` or a positive duration (seconds or a ``timedelta``), as seconds."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise ValidationError(f"{field} must be a positive number of seconds or None", field=field)
    return float(seconds)


def str_dict(value: object, field: str = "metadata") -> dict[str, Any]:
    """A copy of a mapping as a ``dict`` (``None`` gives ``{}``)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"{field} must be a dict, got {type(value).__name__}", field=field)
    return dict(value)


def within_limit(size: int, limit: int, field: str, limit_name: str, *, unit: str = "bytes") -> int:
    """A size no larger than ``limit``; the error names the field, the limit and both numbers."""
    if size > limit:
        raise ValidationError(
            f"{field} is {size} {unit}; the limit is {limit_name}={limit}",
            field=field,
        )
    return size


def stream_id_arg(value: object, field: str) -> str:
    """``value`` when it is a stream entry id (``ms-seq``, each part below 2**64)."""
    if not (
        isinstance(value, str)
        and _STREAM_ID.fullmatch(value)
        and all(int(part) < 2**64 for part in value.split("-"))
    ):
        what = "a history cursor" if field == "before" else "a stream entry id"
        raise ValidationError(f"not {what}: {value!r:.80}", field=field)
    return value
