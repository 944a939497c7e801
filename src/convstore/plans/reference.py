"""A stored message in the shapes the reference ContextEngine (aiecs) hands back.

aiecs keeps each message as JSON text, so what it returns has been through ``json.dumps``
(with its datetime encoder) and ``json.loads``: timestamps are naive UTC ISO text, every
value a JSON one (datetimes as ISO text, bytes as base64, tuples as lists, keys as text).
Here, below the adapter, because the history reads' per-row loop (``plans/reading.py``)
makes this form itself when the ContextEngine adapter asks for it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

from convstore.models import to_utc

__all__ = ["naive_iso", "reference_entry", "to_json"]

#: Values that come out of the reference's JSON round trip as they went in.
_JSON_SCALARS = frozenset((str, int, float, bool, type(None)))


def naive_iso(moment: datetime) -> str:
    """ISO text of ``moment`` in UTC without an offset, as ContextEngine stores timestamps."""
    return to_utc(moment).replace(tzinfo=None).isoformat()


def to_json(value: Any) -> Any:
    """``value`` as the reference returns it after its JSON round trip."""
    kind = type(value)
    if kind in _JSON_SCALARS:
        return value
    if kind is dict:  # the common case, without the ABC checks below (every message read)
        return {
            k if type(k) is str else str(k): v if type(v) in _JSON_SCALARS else to_json(v)
            for k, v in value.items()
        }
    if kind is list:
        return [v if type(v) in _JSON_SCALARS else to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def reference_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A history dict (``messages.history``) as the reference returns it: the naive UTC
    ISO timestamp, JSON values.

    The store's timestamps are UTC ISO text: the naive form is the same text without its
    ``+00:00`` (exactly what :func:`naive_iso` makes of it, without parsing it back).
    """
    stamp = entry["timestamp"]
    return {
        "role": entry["role"],
        "content": entry["content"],
        "timestamp": (
            stamp[:-6] if stamp.endswith("+00:00") else naive_iso(datetime.fromisoformat(stamp))
        ),
        "metadata": to_json(entry["metadata"]),
    }
