"""Upgrading stored dicts between schema versions.

Versions of the *dict* form (what ``to_dict`` produces, plus a ``"version"`` key):

* ``"1.0"`` (also: no ``"version"`` key): participants may lack ``metadata`` and
  may use the legacy form ``{"id", "type", "role"}`` that ContextEngine's
  ``create_conversation_session`` takes; timestamps may be naive.
* ``"1.1"``: every participant has the canonical keys and a ``metadata`` dict
  (the spec's own upgrade step).
* ``"2.0"`` (current): timestamps are ISO 8601 strings with a UTC offset.

A dict from a *newer* version than this library knows is returned unchanged
(``from_dict`` ignores keys it does not know), so old readers keep working.
Inputs are never mutated.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from convstore.errors import ValidationError
from convstore.models import MESSAGE_FIELDS, SESSION_FIELDS, to_utc

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "migrate_message_dict",
    "migrate_models_to_new_version",
    "migrate_participant_dict",
    "migrate_session_dict",
]

CURRENT_SCHEMA_VERSION = "2.0"
_TIMESTAMP_KEYS = tuple(dict.fromkeys((*SESSION_FIELDS.datetimes, *MESSAGE_FIELDS.datetimes)))


def _version(data: Mapping[str, Any]) -> tuple[int, ...]:
    raw = data.get("version", "1.0")
    try:
        return tuple(int(part) for part in str(raw).split("."))
    except ValueError:
        raise ValidationError(
            f"version must look like '1.0', got {raw!r}", field="version"
        ) from None


def _current() -> tuple[int, ...]:
    return tuple(int(part) for part in CURRENT_SCHEMA_VERSION.split("."))


def _participant_1_0_to_1_1(data: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ValidationError(
            f"a participant must be a mapping, got {type(data).__name__}", field="participants"
        )
    out = dict(data)
    for legacy, canonical in (
        ("id", "participant_id"),
        ("type", "participant_type"),
        ("role", "participant_role"),
    ):
        if legacy in out:
            value = out.pop(legacy)
            out.setdefault(canonical, value)
    out.setdefault("participant_role", None)
    if out.get("metadata") is None:
        out["metadata"] = {}
    return out


def _upgrade(data: Mapping[str, Any], participants_key: str | None) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ValidationError(f"expected a mapping, got {type(data).__name__}", field="data")
    version = _version(data)
    out = copy.deepcopy(dict(data))
    if version > _current():
        return out
    if version < (1, 1):
        if participants_key == "":
            out = _participant_1_0_to_1_1(out)
        elif participants_key and isinstance(out.get(participants_key), list):
            out[participants_key] = [_participant_1_0_to_1_1(p) for p in out[participants_key]]
        if out.get("metadata") is None and participants_key is not None:
            out["metadata"] = {}
    if version < (2, 0):
        for key in _TIMESTAMP_KEYS:
            if key in out:
                out[key] = to_utc(out[key], key).isoformat()
    out["version"] = CURRENT_SCHEMA_VERSION
    return out


def migrate_participant_dict(data: Mapping[str, Any]) -> dict[str, Any]:
    """Upgrade a participant dict (legacy ``{id, type, role}`` included) to the current form."""
    return _upgrade(data, "")


def migrate_session_dict(data: Mapping[str, Any]) -> dict[str, Any]:
    """Upgrade a ``ConversationSession.to_dict()``-shaped dict to the current form."""
    return _upgrade(data, "participants")


def migrate_message_dict(data: Mapping[str, Any]) -> dict[str, Any]:
    """Upgrade an ``AgentCommunicationMessage.to_dict()``-shaped dict to the current form."""
    return _upgrade(data, None)


def migrate_models_to_new_version(old_data: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's entry point: upgrade any of the three dict shapes, recognised by their keys."""
    if "participants" in old_data:
        return migrate_session_dict(old_data)
    if "message_type" in old_data or "sender_id" in old_data:
        return migrate_message_dict(old_data)
    return migrate_participant_dict(old_data)
