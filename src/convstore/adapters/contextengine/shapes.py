"""The reference ContextEngine's value shapes, on the way in and on the way out.

aiecs's ContextEngine stores JSON, so what it hands back has been through ``json.dumps``
with its datetime encoder and ``json.loads``: datetimes are ISO strings (naive ones stay
naive), tuples are lists. On the way in it turns dataclasses into dicts and sets into lists
(``_sanitize_dataclasses``) for checkpoints and task contexts. The adapter stores what that
JSON would hold, so what it returns is exactly the reference's and aiecs code that
``json.dumps`` what it read keeps working. Bytes, which JSON cannot hold, are stored as
bytes and come back as base64 text (documented in README). The way out (naive ISO text,
JSON values), which the history reads make in their own loop, is ``plans/reference.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = ["json_in", "sanitize"]


def json_in(value: Any) -> Any:
    """What the reference's JSON encoder stores: datetimes as ``isoformat()`` text (naive
    stays naive, aware keeps its offset), tuples as lists. Anything JSON cannot hold is
    left for the codec's check to refuse."""
    if isinstance(value, Mapping):
        return {k: json_in(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_in(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def sanitize(value: Any) -> Any:
    """Dataclasses to dicts and sets to lists (the reference's ``_sanitize_dataclasses``
    for checkpoints and task contexts), then :func:`json_in`."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sanitize(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {k: sanitize(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [sanitize(v) for v in value]
    return json_in(value)
