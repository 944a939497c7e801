"""Session plans: save, get, touch, delete, retention (listing is in ``plans/listing.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgpack

from convstore import codec, lua
from convstore.errors import (
    CodecError,
    ConcurrentModification,
    SessionExists,
    SessionKeyConflict,
    ValidationError,
)
from convstore.models import ConversationSession
from convstore.plans.config import Retention, StoreConfig
from convstore.plans.damage import located, script_status
from convstore.plans.indexes import cluster_index_sync, index_keys, session_status, split_idx
from convstore.plans.steps import Call, Plan, Run
from convstore.plans.values import epoch_micros, from_epoch_micros, stored_int

__all__ = [
    "SESSION_FIELDS",
    "create_session",
    "delete_session",
    "get_session",
    "ping",
    "save_session",
    "session_exists",
    "session_from_fields",
    "session_identity",
    "set_retention",
    "touch_session",
]


def session_identity(session: ConversationSession) -> bytes:
    parse = session.key_parse()
    packed: bytes = msgpack.packb([str(parse.session_type), parse.session_id, list(parse.roles)])
    return packed


def _describe_identity(raw: bytes) -> str:
    try:
        kind, sid, roles = msgpack.unpackb(raw)
        return f"session_id={sid!r}, session_type={kind!r}, roles={roles!r}"
    except Exception:  # noqa: BLE001 - a corrupt identity must not mask the conflict itself
        return "an unreadable identity"


def ping(config: StoreConfig) -> Plan[bool]:
    """True when the server answers; failures surface as StoreUnavailable like any operation."""
    return bool((yield Call(("PING",))))


# --------------------------------------------------------------------------- sessions


def save_session(config: StoreConfig, session: ConversationSession, force: bool) -> Plan[str]:
    """Write ``session`` if the stored revision is still the one it was read at.

    A freshly built object (revision 0) therefore creates; on a key that is already
    stored it raises :class:`SessionExists`. ``force`` skips the revision check: upsert.
    """
    return (yield from _write_session(config, session, -1 if force else session.revision))


def create_session(config: StoreConfig, session: ConversationSession) -> Plan[str]:
    """Write ``session`` only if nothing is stored under its key (:class:`SessionExists`)."""
    return (yield from _write_session(config, session, 0))


def _write_session(config: StoreConfig, session: ConversationSession, expected: int) -> Plan[str]:
    """``expected``: the stored revision required (0 = none stored, -1 = any)."""
    session.validate()
    key = session.generate_session_key()
    keys, common = config.common(key)
    index = index_keys(config, session)
    reply = yield Run(
        lua.SAVE,
        keys.all(),
        (
            *common,
            codec.encode_session(session, limits=config.limits),
            session_identity(session),
            expected,
            epoch_micros(session.last_activity),
            "\n".join(index),
        ),
    )
    status = script_status(reply, key)
    if status == -2:
        raise SessionKeyConflict(key, f"it is held by {_describe_identity(reply[1])}")
    if status == -3:
        if expected == 0:
            raise SessionExists(key, int(reply[1]))
        raise ConcurrentModification(key, expected, int(reply[1]))
    old = set(split_idx(reply[2])) - set(index)
    yield from cluster_index_sync(config, key, index, old, reply[1])
    session.revision = status
    session.last_activity = from_epoch_micros(reply[1])
    return key


def session_from_fields(
    config: StoreConfig, key: str, fields: Sequence[Any]
) -> ConversationSession | None:
    """The session in one HMGET reply; damage raises :class:`CodecError` naming the key."""
    record, revision, last_activity = fields[0], fields[1], fields[2]
    if record is None:
        return None
    try:
        session = codec.decode_session(record, max_bytes=config.limits.max_record_bytes)
        stored_key = session.generate_session_key()
        if stored_key != key:
            raise CodecError(f"the record belongs to session key {stored_key!r}")
        session.revision = 0 if revision is None else stored_int(revision, "rev")
        if last_activity is not None:
            session.last_activity = from_epoch_micros(last_activity, "la")
    except (CodecError, ValidationError) as exc:
        error = exc if isinstance(exc, CodecError) else CodecError(str(exc))
        raise located(error, key) from exc
    return session


#: The session-hash fields :func:`session_from_fields` reads (one HMGET).
SESSION_FIELDS = ("rec", "rev", "la")


def get_session(config: StoreConfig, key: str) -> Plan[ConversationSession | None]:
    hash_key = config.keyspace.session(key).session
    fields = yield Call(("HMGET", hash_key, *SESSION_FIELDS))
    return session_from_fields(config, key, fields)


def session_exists(config: StoreConfig, key: str) -> Plan[bool]:
    """True when a session record is stored under ``key``.

    A key the ContextEngine adapter only appended to has a hash (counters) but no record:
    it is not a session until one is saved.
    """
    return bool((yield Call(("HEXISTS", config.keyspace.session(key).session, "rec"))))


def touch_session(config: StoreConfig, key: str) -> Plan[datetime]:
    keys, common = config.common(key)
    reply = yield Run(lua.TOUCH, keys.all(), common)
    yield from session_status(config, reply, key)
    yield from cluster_index_sync(config, key, split_idx(reply[2]), (), reply[1])
    return from_epoch_micros(reply[1])


def delete_session(config: StoreConfig, key: str) -> Plan[bool]:
    keys, common = config.common(key)
    reply = yield Run(lua.DELETE, keys.all(), common)
    script_status(reply, key)
    yield from cluster_index_sync(config, key, (), split_idx(reply[1]), 0)
    return bool(int(reply[0]))


def set_retention(config: StoreConfig, key: str, retention: Retention | None) -> Plan[None]:
    keys, common = config.common(key)
    fields = (
        ("", "", "")
        if retention is None
        else (
            str(retention.max_messages or 0),
            str(retention.ms("max_age")),
            str(retention.ms("ttl")),
        )
    )
    reply = yield Run(lua.SET_RETENTION, keys.all(), (*common, *fields))
    yield from session_status(config, reply, key)
