"""The reference ContextEngine's value shapes, on the way in and on the way out.

aiecs's ContextEngine stores JSON, so what it hands back has been through ``json.dumps``
with its datetime encoder and ``json.loads``: datetimes are ISO strings, tuples are lists.
On the way in it turns dataclasses into dicts and sets into lists (``_sanitize_dataclasses``)
for checkpoints and task contexts. The adapter does the same, so aiecs code that
``json.dumps`` what it read (``ContextEngineAdapter.load_agent_state``) keeps working.
Bytes, which JSON cannot hold, come back as base64 text (documented in README).
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

from convstore.models import to_utc

__all__ = ["naive_iso", "sanitize", "to_json"]


def naive_iso(moment: datetime) -> str:
    """ISO text of ``moment`` in UTC without an offset, as ContextEngine stores timestamps."""
    return to_utc(moment).replace(tzinfo=None).isoformat()


def sanitize(value: Any) -> Any:
    """Dataclasses to dicts, sets to lists, recursively (the reference's input rule)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sanitize(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {k: sanitize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sanitize(v) for v in value]
    if isinstance(value, set | frozenset):
        return [sanitize(v) for v in value]
    return value


def to_json(value: Any) -> Any:
    """``value`` as the reference returns it after its JSON round trip."""
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value
