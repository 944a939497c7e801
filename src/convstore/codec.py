"""msgpack bytes for the three models and for ContextEngine message dicts.

Every payload is a msgpack map carrying ``"v"`` (:data:`WIRE_VERSION`).
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

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import msgpack

from convstore.errors import CodecError, ValidationError
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
from convstore.validation import within_limit

__all__ = [
    "MAX_DEPTH",
    "MAX_PAYLOAD_BYTES",
    "WIRE_VERSION",
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
    "packb",
    "unpackb",
]

WIRE_VERSION = 1
MAX_PAYLOAD_BYTES = DEFAULT_LIMITS.max_record_bytes
MAX_DEPTH = 64
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_SCALARS = (str, bool, float, bytes, type(None))
#: Containers above a participant's metadata in a session payload: the payload map, the
#: participants list and the participant map. Decoding allows metadata MAX_DEPTH deep below them.
_PAYLOAD_NESTING = 3


# --------------------------------------------------------------------------- low level


_PLAIN_SCALARS = frozenset((str, bool, float, bytes, type(None), datetime))


def _plain(value: object, depth: int) -> bool:
    """Fast, path-free form of :func:`check_storable` for exact built-in types (the hot path)."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return True
    if kind is int:
        return _INT_MIN <= value <= _INT_MAX  # type: ignore[operator]
    if depth >= MAX_DEPTH:
        return False
    if kind is dict:
        return all(
            type(k) is str and _plain(v, depth + 1)
            for k, v in value.items()  # type: ignore[attr-defined]
        )
    if kind is list or kind is tuple:
        return all(_plain(v, depth + 1) for v in value)  # type: ignore[attr-defined]
    return False


def check_storable(value: object, path: str = "metadata", depth: int = 0) -> None:
    """Raise :class:`CodecError` naming the first path msgpack could not carry faithfully."""
    if _plain(value, depth):
        return
    _check_path(value, path, depth)


def _check_path(value: object, path: str, depth: int) -> None:
    """The slow walk that builds key paths; only reached for subclasses and bad values."""
    if isinstance(value, _SCALARS) or isinstance(value, datetime):
        return
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise CodecError(f"{path}: integer {value} does not fit in 64 bits", path=path)
        return
    if depth >= MAX_DEPTH:
        raise CodecError(f"{path}: nested deeper than {MAX_DEPTH} levels", path=path)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CodecError(
                    f"{path}: keys must be str, got {type(key).__name__} key {key!r}", path=path
                )
            _check_path(item, f"{path}.{key}", depth + 1)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_path(item, f"{path}[{index}]", depth + 1)
        return
    raise CodecError(
        f"{path}: {type(value).__name__} values cannot be stored "
        "(use str, int, float, bool, None, bytes, datetime, list, tuple or dict)",
        path=path,
    )


def _default(value: object) -> object:
    if isinstance(value, datetime):  # msgpack only hands us naive ones
        return to_utc(value)
    raise TypeError(f"cannot pack {type(value).__name__}")


def packb(
    payload: Mapping[str, Any], *, max_bytes: int | None = MAX_PAYLOAD_BYTES, field: str = "record"
) -> bytes:
    """Pack a prepared payload; values must already have passed :func:`check_storable`.

    A result over ``max_bytes`` (the store's ``max_record_bytes``; None = unchecked)
    raises :class:`ValidationError` naming ``field``: the readers would refuse it.
    """
    try:
        packed: bytes = msgpack.packb(payload, use_bin_type=True, datetime=True, default=_default)
    except (TypeError, ValueError, OverflowError) as exc:
        check_storable(payload, "payload")  # names the path when it can
        raise CodecError(f"payload cannot be encoded: {exc}") from exc
    if max_bytes is not None:
        within_limit(len(packed), max_bytes, field, "max_record_bytes")
    return packed


def _pack_sized(
    payload: Mapping[str, Any],
    limits: Limits,
    metadata: Iterable[tuple[Mapping[str, Any], str]],
    field: str = "record",
) -> bytes:
    """Pack, then refuse an oversize metadata dict (by its own name) or record.

    Each metadata dict is measured only when the whole record could be over its limit.
    """
    packed = packb(payload, max_bytes=None)
    if len(packed) > limits.max_metadata_bytes:
        for meta, name in metadata:
            size = len(packb(meta, max_bytes=None))
            within_limit(size, limits.max_metadata_bytes, name, "max_metadata_bytes")
    within_limit(len(packed), limits.max_record_bytes, field, "max_record_bytes")
    return packed


def check_text_size(text: str, limit: int, field: str, limit_name: str) -> None:
    """A str whose UTF-8 form fits ``limit``; encodes only when the length cannot tell."""
    if len(text) > limit:  # refused without copying it: every character is at least a byte
        within_limit(
            len(text), limit, field, limit_name, unit="characters (at least as many bytes)"
        )
    if len(text) * 4 > limit:
        within_limit(len(text.encode("utf-8", "surrogatepass")), limit, field, limit_name)


def _reject_ext(code: int, data: bytes) -> object:
    raise CodecError(f"unknown msgpack extension type {code}")


def unpackb(
    data: bytes, expected_kind: str | None = None, *, max_bytes: int = MAX_PAYLOAD_BYTES
) -> dict[str, Any]:
    """Unpack a convstore payload; the only exception it raises is :class:`CodecError`.

    ``max_bytes`` is the store's ``max_record_bytes``: the same number the writers obey.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise CodecError(
            f"payload of {len(data)} bytes exceeds max_record_bytes={max_bytes} "
            "(written by a store with larger limits?)"
        )
    try:
        obj = msgpack.unpackb(
            data, raw=False, timestamp=3, strict_map_key=True, ext_hook=_reject_ext, use_list=True
        )
    except CodecError:
        raise
    except Exception as exc:  # msgpack raises many types on hostile input
        raise CodecError(f"not a valid msgpack payload: {type(exc).__name__}: {exc}") from exc
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
    return _pack_sized(payload, limits, [(participant.metadata, "participant.metadata")])


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
    return _pack_sized(session_payload(session), limits, metadata, "session record")


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
    return _pack_sized(payload, limits, [(message.metadata, "message.metadata")])


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
    """A history entry in ContextEngine form: short keys, since there is one per message.

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
    check_storable(metadata, "metadata")
    payload = {"v": WIRE_VERSION, "r": role, "c": content, "t": timestamp, "m": metadata}
    return _pack_sized(payload, limits, [(metadata, "metadata")])


def decode_entry(data: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """``{"role", "content", "timestamp" (ISO string), "metadata"}``, exactly those keys."""
    obj = unpackb(data, max_bytes=max_bytes)
    timestamp = obj.get("t")
    role, content, metadata = obj.get("r"), obj.get("c"), obj.get("m")
    if not (
        isinstance(role, str)
        and isinstance(content, str)
        and isinstance(timestamp, datetime)
        and isinstance(metadata, dict)
    ):
        raise CodecError("history entry payload is missing role, content, timestamp or metadata")
    return {
        "role": role,
        "content": content,
        "timestamp": timestamp.isoformat(),
        "metadata": metadata,
    }
