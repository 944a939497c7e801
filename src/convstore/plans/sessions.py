"""Session plans: save, get, touch, delete, retention, and paged listing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgpack

from convstore import codec, lua
from convstore.errors import (
    ConcurrentModification,
    SessionExists,
    SessionKeyConflict,
    ValidationError,
)
from convstore.models import ConversationSession, SessionType, parse_choice
from convstore.plans.config import Retention, StoreConfig
from convstore.plans.indexes import cluster_index_sync, index_keys, missing_session, split_idx
from convstore.plans.results import SessionPage
from convstore.plans.steps import Batch, Call, Plan, Run
from convstore.plans.values import as_text, epoch_micros, from_epoch_micros
from convstore.validation import limit_or_all

__all__ = [
    "create_session",
    "delete_session",
    "get_session",
    "list_sessions",
    "ping",
    "save_session",
    "session_exists",
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
            codec.encode_session(session),
            session_identity(session),
            expected,
            epoch_micros(session.last_activity),
            "\n".join(index),
        ),
    )
    status = int(reply[0])
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


def _session_from_fields(fields: Sequence[Any]) -> ConversationSession | None:
    record, revision, last_activity = fields[0], fields[1], fields[2]
    if record is None:
        return None
    session = codec.decode_session(record)
    session.revision = int(revision or 0)
    if last_activity is not None:
        session.last_activity = from_epoch_micros(last_activity)
    return session


_GET_FIELDS = ("rec", "rev", "la")


def get_session(config: StoreConfig, key: str) -> Plan[ConversationSession | None]:
    hash_key = config.keyspace.session(key).session
    fields = yield Call(("HMGET", hash_key, *_GET_FIELDS))
    return _session_from_fields(fields)


def session_exists(config: StoreConfig, key: str) -> Plan[bool]:
    """True when a session record is stored under ``key``.

    A key the ContextEngine adapter only appended to has a hash (counters) but no record:
    it is not a session until one is saved.
    """
    return bool((yield Call(("HEXISTS", config.keyspace.session(key).session, "rec"))))


def touch_session(config: StoreConfig, key: str) -> Plan[datetime]:
    keys, common = config.common(key)
    reply = yield Run(lua.TOUCH, keys.all(), common)
    if int(reply[0]) == -1:
        yield from missing_session(config, key)
    yield from cluster_index_sync(config, key, split_idx(reply[2]), (), reply[1])
    return from_epoch_micros(reply[1])


def delete_session(config: StoreConfig, key: str) -> Plan[bool]:
    keys, common = config.common(key)
    reply = yield Run(lua.DELETE, keys.all(), common)
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
    if int(reply[0]) == -1:
        yield from missing_session(config, key)


#: Sessions read per round trip when ``list(limit=None)`` walks a whole index.
_LIST_CHUNK = 500


def _parse_cursor(cursor: str | None) -> tuple[str, int | None, bytes | None]:
    if cursor is None:
        return "+inf", None, None
    score, sep, member = cursor.partition(":")
    if not sep or not score.isdigit():
        raise ValidationError(f"not a session cursor: {cursor!r}", field="cursor")
    return score, int(score), member.encode()


def list_sessions(
    config: StoreConfig,
    participant_id: str | None,
    session_type: str | None,
    limit: int | None,
    cursor: str | None,
) -> Plan[SessionPage]:
    """Sessions by last activity, newest first; ``limit=None`` walks the whole index."""
    wanted = limit_or_all(limit)
    ks = config.keyspace
    if session_type is not None:
        session_type = str(parse_choice(session_type, SessionType, "session_type"))
    if participant_id is not None and session_type is not None:
        index = ks.index_participant_type(participant_id, session_type)
    elif participant_id is not None:
        index = ks.index_participant(participant_id)
    elif session_type is not None:
        index = ks.index_type(session_type)
    else:
        index = ks.index_all
    max_score, after_score, after_member = _parse_cursor(cursor)
    items: list[ConversationSession] = []
    stale: list[bytes] = []
    last: tuple[int, bytes] | None = None
    while wanted is None or len(items) < wanted:
        chunk = _LIST_CHUNK if wanted is None else wanted - len(items)
        rows = yield Run(lua.LIST, (index,), (max_score, chunk))
        pairs = [(rows[i], int(float(rows[i + 1]))) for i in range(0, len(rows), 2)]
        if after_score is not None and after_member is not None:
            pairs = [
                (m, s)
                for m, s in pairs
                if s < after_score or (s == after_score and m < after_member)
            ]
        if not pairs:
            break
        pairs = pairs[:chunk]
        replies = yield Batch(
            tuple(Call(("HMGET", ks.session(as_text(m)).session, *_GET_FIELDS)) for m, _ in pairs)
        )
        for (member, score), fields in zip(pairs, replies, strict=True):
            session = _session_from_fields(fields)
            if session is None:
                stale.append(member)
            else:
                items.append(session)
            last = (score, member)
        assert last is not None
        max_score, after_score, after_member = str(last[0]), last[0], last[1]
    if stale:  # sessions that expired by TTL leave index entries behind: drop them now
        yield Call(("ZREM", index, *stale))
    more = len(items) == wanted and last is not None
    return SessionPage(items, f"{last[0]}:{as_text(last[1])}" if more and last else None)
