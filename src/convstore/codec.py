"""msgpack bytes for the three models and for ContextEngine message dicts.

Every payload is a msgpack map carrying ``"v"`` (:data:`WIRE_VERSION`), except history
entries: one per message, they are arrays led by :data:`ENTRY_VERSION` (see
:func:`encode_entry`; the older map form is still read).
Datetimes travel as the msgpack Timestamp extension (type -1) and come back as
aware UTC datetimes; a naive datetime inside metadata is labelled UTC, as the
model policy says.

What can be stored in metadata: ``None``, ``bool``, ``int`` (64-bit), ``float``,
``str``, ``bytes``, ``datetime``, lists, tuples and dicts with ``str`` keys.
**Tuples come back as lists.** Anything else (sets, ``Decimal``, arbitrary
objects, non-string keys) raises :class:`CodecError` naming the key path,
before a byte is produced, so nothing half-written can reach Redis.

Sizes: the encoders refuse, with :class:`ValidationError` naming the field and
the limit, content, metadata and records larger than the store's :class:`Limits`;
the decoders accept records up to the same ``max_record_bytes``
(:data:`MAX_PAYLOAD_BYTES` by default), so whatever was written can be read.

Decoding is safe on hostile bytes: payloads over the record limit are refused, only the Timestamp extension is accepted, and every failure surfaces
as :class:`CodecError`. A payload from a newer version decodes: fields this
version does not know are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from convstore.errors import CodecError, ValidationError
from convstore.isotime import utc_isoformat
from convstore.limits import DEFAULT_LIMITS, Limits
from convstore.message_ids import decode_message_id, encode_message_id
from convstore.models import (
    MESSAGE_FIELDS,
    PARTICIPANT_FIELDS,
    AgentCommunicationMessage,
    ConversationParticipant,
    ConversationSession,
    to_utc,
)
from convstore.packing import (
    MAX_DEPTH,
    MAX_PAYLOAD_BYTES,
    certainly_plain,
    check_storable,
    check_text_size,
    pack_sized,
    packb,
    unpack_value,
)

__all__ = [
    "ENTRY_VERSION",
    "MAX_DEPTH",
    "MAX_PAYLOAD_BYTES",
    "WIRE_VERSION",
    "check_entry",
    "check_storable",
    "check_text_size",
    "decode_entry",
    "decode_message",
    "decode_message_id",
    "decode_participant",
    "decode_session",
    "encode_entry",
    "encode_message",
    "encode_message_id",
    "encode_participant",
    "encode_session",
    "entry_values",
    "pack_entry",
    "packb",
    "plain_entry",
    "unpackb",
    "upgrade_entry",
]

WIRE_VERSION = 1
#: History entries are msgpack arrays ``[ENTRY_VERSION, role, content, timestamp, metadata]``
#: (see :func:`encode_entry`); entries written before it are maps ``{"v": 1, "r", "c", "t", "m"}``.
ENTRY_VERSION = 2
#: Containers above a participant's metadata in a session payload: the payload map, the
#: participants list and the participant map. Decoding allows metadata MAX_DEPTH deep below them.
_PAYLOAD_NESTING = 3


def unpackb(
    data: bytes, expected_kind: str | None = None, *, max_bytes: int = MAX_PAYLOAD_BYTES
) -> dict[str, Any]:
    """Unpack a convstore map payload; the only exception it raises is :class:`CodecError`.

    ``max_bytes`` is the store's ``max_record_bytes``: the same number the writers obey.
    """
    obj = unpack_value(data, max_bytes)
    if not isinstance(obj, dict):
        raise CodecError(f"payload must be a map, got {type(obj).__name__}")
    version = obj.get("v")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CodecError(f"payload has no valid version field 'v': {version!r}")
    if expected_kind is not None and obj.get("k") != expected_kind:
        raise CodecError(f"payload kind is {obj.get('k')!r}, expected {expected_kind!r}")
    # Same limits as encoding (str keys, MAX_DEPTH inside metadata), so hostile nesting
    # cannot reach the recursive code (repr, deepcopy) that builds the models.
    check_storable(obj, "payload", -_PAYLOAD_NESTING)
    return obj


def _field(obj: Mapping[str, Any], key: str, types: type | tuple[type, ...], kind: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, types):
        raise CodecError(
            f"{kind} payload: field {key!r} has the wrong type ({type(value).__name__})"
        )
    return value


T = TypeVar("T")


def _build(kind: str, make: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return make(*args, **kwargs)
    except CodecError:
        raise
    except (ValidationError, TypeError, KeyError, AttributeError) as exc:
        raise CodecError(f"stored {kind} is invalid: {exc}") from exc


# --------------------------------------------------------------------------- models


def _participant_payload(p: ConversationParticipant) -> dict[str, Any]:
    check_storable(p.metadata, "participant.metadata")
    return {name: _stored(getattr(p, name)) for name in PARTICIPANT_FIELDS.names}


def _participant_from(obj: Any) -> ConversationParticipant:
    if not isinstance(obj, dict):
        raise CodecError(f"participant payload must be a map, got {type(obj).__name__}")
    return _build("participant", ConversationParticipant.from_dict, obj)


def encode_participant(
    participant: ConversationParticipant, *, limits: Limits = DEFAULT_LIMITS
) -> bytes:
    payload = {"v": WIRE_VERSION, "k": "participant", **_participant_payload(participant)}
    return pack_sized(payload, limits, [(participant.metadata, "participant.metadata")])


def decode_participant(
    data: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES
) -> ConversationParticipant:
    return _participant_from(unpackb(data, "participant", max_bytes=max_bytes))


def session_payload(session: ConversationSession) -> dict[str, Any]:
    check_storable(session.metadata, "session.metadata")
    return {
        "v": WIRE_VERSION,
        "k": "session",
        "session_id": session.session_id,
        "session_type": str(session.session_type),
        "participants": [_participant_payload(p) for p in session.participants],
        "created_at": session.created_at,
        "last_activity": session.last_activity,
        "metadata": session.metadata,
    }


def encode_session(session: ConversationSession, *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The session record; each metadata dict and the whole record must fit ``limits``."""
    metadata = [(session.metadata, "session.metadata")]
    metadata += [
        (p.metadata, f"participants[{i}].metadata") for i, p in enumerate(session.participants)
    ]
    return pack_sized(session_payload(session), limits, metadata, "session record")


def decode_session(data: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> ConversationSession:
    obj = unpackb(data, "session", max_bytes=max_bytes)
    participants = [_participant_from(p) for p in _field(obj, "participants", list, "session")]
    return _build(
        "session",
        ConversationSession,
        session_id=obj.get("session_id"),
        participants=participants,
        session_type=obj.get("session_type"),
        created_at=_field(obj, "created_at", datetime, "session"),
        last_activity=_field(obj, "last_activity", datetime, "session"),
        metadata=_field(obj, "metadata", dict, "session"),
    )


#: Message fields stored as text (or None); timestamp and metadata keep their msgpack types.
_MESSAGE_FIELDS = tuple(n for n in MESSAGE_FIELDS.names if n not in ("timestamp", "metadata"))


def _stored(value: Any) -> Any:
    """A field value as msgpack stores it: enum members as their plain string."""
    return str(value) if isinstance(value, StrEnum) else value


def encode_message(message: AgentCommunicationMessage, *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    check_storable(message.metadata, "message.metadata")
    check_text_size(message.content, limits.max_content_bytes, "content", "max_content_bytes")
    payload: dict[str, Any] = {"v": WIRE_VERSION, "k": "message"}
    for name in _MESSAGE_FIELDS:
        value = getattr(message, name)
        payload[name] = None if value is None else str(value)
    payload["timestamp"] = message.timestamp
    payload["metadata"] = message.metadata
    return pack_sized(payload, limits, [(message.metadata, "message.metadata")])


def decode_message(data: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> AgentCommunicationMessage:
    obj = unpackb(data, "message", max_bytes=max_bytes)
    _field(obj, "timestamp", datetime, "message")
    _field(obj, "metadata", dict, "message")
    return _build(
        "message",
        AgentCommunicationMessage,
        **{name: obj.get(name) for name in MESSAGE_FIELDS.names},
    )


# --------------------------------------------------------------------------- ContextEngine dicts


def encode_entry(
    role: str,
    content: str,
    timestamp: datetime,
    metadata: Mapping[str, Any],
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """A history entry in ContextEngine form: ``[ENTRY_VERSION, role, content, timestamp,
    metadata]``, an array since there is one per message (no field names to store).

    ``role`` and ``content`` must be str, ``metadata`` a dict, ``timestamp`` a datetime
    (naive = UTC) or an ISO 8601 string; anything else raises :class:`CodecError`, so
    every entry this writes can be read back by :func:`decode_entry`. Content, metadata
    and the whole entry must fit ``limits`` (:class:`ValidationError` otherwise).
    """
    for name, value in (("role", role), ("content", content)):
        if not isinstance(value, str):
            raise CodecError(f"{name} must be a str, got {type(value).__name__}", path=name)
    check_text_size(content, limits.max_content_bytes, "content", "max_content_bytes")
    try:
        timestamp = to_utc(timestamp, "timestamp")
    except ValidationError as exc:
        raise CodecError(str(exc), path="timestamp") from None
    if not isinstance(metadata, dict):
        raise CodecError(f"metadata must be a dict, got {type(metadata).__name__}", path="metadata")
    return pack_entry(role, content, timestamp, metadata, limits=limits)


def pack_entry(
    role: str,
    content: str,
    timestamp: datetime,
    metadata: dict[str, Any],
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """:func:`encode_entry` for a caller that has already made sure ``role`` and
    ``content`` are str, ``timestamp`` an aware UTC datetime and ``metadata`` a dict (the
    append plan, which checks every message before it sends any): sizes and the metadata's
    types are still checked here."""
    check_text_size(content, limits.max_content_bytes, "content", "max_content_bytes")
    check_storable(metadata, "metadata")
    payload = [ENTRY_VERSION, role, content, timestamp, metadata]
    return pack_sized(payload, limits, [(metadata, "metadata")])


def _entry_fields(obj: object) -> tuple[Any, Any, Any, Any]:
    """(role, content, timestamp, metadata) of a decoded entry in either form, unchecked."""
    if type(obj) is list:
        version = obj[0] if obj else None
        if type(version) is not int or version < ENTRY_VERSION or len(obj) < 5:
            raise CodecError(f"history entry payload has no valid version: {version!r:.40}")
        return obj[1], obj[2], obj[3], obj[4]
    if type(obj) is not dict:
        raise CodecError(f"payload must be a map or an array, got {type(obj).__name__}")
    version = obj.get("v")
    if type(version) is not int or version < 1:
        raise CodecError(f"payload has no valid version field 'v': {version!r:.40}")
    return obj.get("r"), obj.get("c"), obj.get("t"), obj.get("m")


def entry_values(
    data: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES
) -> tuple[str, str, datetime, dict[str, Any]]:
    """(role, content, timestamp, metadata) of a history entry in either stored form (the
    array :func:`encode_entry` writes, or the older map): the timestamp an aware datetime.

    A newer version's extra array items or map fields are ignored. The decoded value is
    walked for bytes keys and nesting (the same rule as :func:`unpackb`) only when the
    bytes cannot rule them out (:func:`convstore.packing.certainly_plain`): this runs once
    per message read, so it is kept to one unpack and one scan.
    """
    obj = unpack_value(data, max_bytes)
    if type(obj) is list and len(obj) >= 5 and obj[0] == ENTRY_VERSION and type(obj[0]) is int:
        role, content, timestamp, metadata = obj[1], obj[2], obj[3], obj[4]
    else:
        role, content, timestamp, metadata = _entry_fields(obj)
    if not (
        type(role) is str
        and type(content) is str
        and type(timestamp) is datetime
        and type(metadata) is dict
    ):
        raise CodecError("history entry payload is missing role, content, timestamp or metadata")
    if type(obj) is list and type(data) is bytes:
        plain = plain_entry(data, role, content)
    else:
        plain = certainly_plain(data if type(data) is bytes else bytes(data))
    if not plain:
        check_entry(obj)
    return role, content, timestamp, metadata


def decode_entry(data: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """``{"role", "content", "timestamp" (ISO string), "metadata"}``, exactly those keys:
    :func:`entry_values` in ContextEngine form."""
    role, content, timestamp, metadata = entry_values(data, max_bytes=max_bytes)
    return {
        "role": role,
        "content": content,
        "timestamp": utc_isoformat(timestamp),
        "metadata": metadata,
    }


#: msgpack's str headers for lengths below 256 (fixstr, then str 8), as it writes them.
_STR_HEADERS = tuple(bytes([0xA0 | n]) for n in range(32)) + tuple(
    bytes([0xD9, n]) for n in range(32, 256)
)


def _str_header(size: int) -> bytes:
    if size < 256:
        return _STR_HEADERS[size]
    if size < 65536:
        return b"\xda" + size.to_bytes(2, "big")
    return b"\xdb" + size.to_bytes(4, "big")


def plain_entry(data: bytes, role: str, content: str) -> bool:
    """:func:`convstore.packing.certainly_plain` for the bytes of an array-form entry that
    decoded to ``[ENTRY_VERSION, role, content, timestamp, metadata]``; when the whole
    payload cannot be cleared, a second scan of only the metadata's bytes.

    Content and timestamp bytes often look like headers (non-ASCII UTF-8, the timestamp's
    seconds and nanoseconds), which sent one row in five, and most non-English rows, to
    the walk. The second scan starts exactly at the metadata: each length before it is
    checked against the header bytes actually there (any other layout: False, walk it).
    """
    if certainly_plain(data):
        return True
    n = len(role)
    if n > 31 or data[:3] != b"\x95\x02" + _STR_HEADERS[n]:
        return False
    size = len(content) if content.isascii() else len(content.encode("utf-8"))
    header = _str_header(size)
    at = 3 + n
    if data[at : at + len(header)] != header:
        return False
    at += len(header) + size
    kind = data[at : at + 3]
    if kind[:2] == b"\xd6\xff":  # timestamp 32
        at += 6
    elif kind[:2] == b"\xd7\xff":  # timestamp 64
        at += 10
    elif kind == b"\xc7\x0c\xff":  # timestamp 96
        at += 15
    else:
        return False
    return certainly_plain(data[at:])


def check_entry(obj: object) -> None:
    """Raise :class:`CodecError` when a decoded history entry (either form) holds a bytes map
    key or nests deeper than metadata may: the walk :func:`decode_entry` does when
    :func:`convstore.packing.certainly_plain` cannot rule both out."""
    check_storable(obj, "payload", -_PAYLOAD_NESTING)


def upgrade_entry(data: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> bytes | None:
    """The array form of a map-form (version 1) entry, for the layout migration; None when
    ``data`` is no such entry (already an array, or damaged: readers still report it).

    Only what :func:`decode_entry` returns is kept, so reading the result gives the same dict.
    """
    try:
        obj = unpack_value(data, max_bytes)
        if type(obj) is not dict or obj.get("v") != 1:
            return None
        entry = decode_entry(data, max_bytes=max_bytes)
    except CodecError:
        return None
    payload = [ENTRY_VERSION, entry["role"], entry["content"], obj["t"], entry["metadata"]]
    return packb(payload, max_bytes=None)
