"""Session plans: save, get, touch, delete, retention, and paged listing."""

from __future__ import annotations

import math
import re
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
from convstore.models import ConversationSession, SessionType, parse_choice
from convstore.plans.config import Retention, StoreConfig
from convstore.plans.damage import OnError, Skips, located, script_status
from convstore.plans.indexes import cluster_index_sync, index_keys, session_status, split_idx
from convstore.plans.results import Records, SessionPage
from convstore.plans.steps import Batch, Call, Plan, Run
from convstore.plans.values import as_text, epoch_micros, from_epoch_micros, stored_int
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


def _session_from_fields(
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


_GET_FIELDS = ("rec", "rev", "la")


def get_session(config: StoreConfig, key: str) -> Plan[ConversationSession | None]:
    hash_key = config.keyspace.session(key).session
    fields = yield Call(("HMGET", hash_key, *_GET_FIELDS))
    return _session_from_fields(config, key, fields)


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


#: Sessions read per round trip when ``list(limit=None)`` walks a whole index.
_LIST_CHUNK = 500


#: ``score:member``; scores are whole numbers but may be anything Redis stores (damage).
_CURSOR = re.compile(r"(-?[0-9]{1,20}(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?|[-+]?inf):(.*)", re.DOTALL)


def _parse_cursor(cursor: str | None) -> tuple[str, float | None, bytes | None]:
    if cursor is None:
        return "+inf", None, None
    found = _CURSOR.fullmatch(cursor) if isinstance(cursor, str) else None
    try:
        member = found.group(2).encode() if found else None
    except UnicodeEncodeError:
        member = None
    if found is None or member is None:
        raise ValidationError(f"not a session cursor: {cursor!r}", field="cursor")
    return found.group(1), float(found.group(1)), member


def _score_text(score: float) -> str:
    """A score as a cursor and a ZRANGE bound: exact, and digits only for whole numbers."""
    if not math.isfinite(score):
        return "inf" if score > 0 else "-inf"
    return str(int(score)) if score.is_integer() else repr(score)


def _member_key(config: StoreConfig, index: str, member: Any, score: float) -> str:
    """The session key an index member names; a damaged one raises :class:`CodecError`."""
    try:
        if not math.isfinite(score):
            raise CodecError(f"score {score} is not finite")
        key = as_text(member)
        config.keyspace.session(key)  # the same checks every session key passes
        return key
    except (CodecError, ValidationError) as exc:
        raise located(CodecError(f"member {member!r:.80}: {exc}"), index, kind="index") from exc


def _index_name(config: StoreConfig, participant_id: str | None, session_type: str | None) -> str:
    ks = config.keyspace
    if session_type is not None:
        session_type = str(parse_choice(session_type, SessionType, "session_type"))
    if participant_id is not None and session_type is not None:
        return ks.index_participant_type(participant_id, session_type)
    if participant_id is not None:
        return ks.index_participant(participant_id)
    if session_type is not None:
        return ks.index_type(session_type)
    return ks.index_all


def list_sessions(
    config: StoreConfig,
    participant_id: str | None,
    session_type: str | None,
    limit: int | None,
    cursor: str | None,
    on_error: OnError = "raise",
) -> Plan[SessionPage]:
    """Sessions by last activity, newest first; ``limit=None`` walks the whole index."""
    wanted = limit_or_all(limit)
    skips = Skips(on_error, "list")
    index = _index_name(config, participant_id, session_type)
    max_score, after_score, after_member = _parse_cursor(cursor)
    items: list[ConversationSession] = []
    stale: list[bytes] = []
    last: tuple[float, bytes] | None = None  # (score, member) of the last row read
    while wanted is None or len(items) < wanted:
        chunk = _LIST_CHUNK if wanted is None else wanted - len(items)
        rows = yield Run(lua.LIST, (index,), (max_score, chunk))
        pairs = [(rows[i], float(rows[i + 1])) for i in range(0, len(rows), 2)]
        if after_score is not None and after_member is not None:
            pairs = [
                (m, s)
                for m, s in pairs
                if s < after_score or (s == after_score and m < after_member)
            ]
        if not pairs:
            break
        pairs = pairs[:chunk]
        named: list[tuple[bytes, float, str]] = []
        for member, score in pairs:
            try:
                named.append((member, score, _member_key(config, index, member, score)))
            except CodecError as exc:
                skips.add(exc)  # left in the index as found: a read deletes nothing it cannot read
        replies = yield Batch(
            tuple(
                Call(("HMGET", config.keyspace.session(k).session, *_GET_FIELDS))
                for _, _, k in named
            )
        )
        for (member, _, key), fields in zip(named, replies, strict=True):
            try:
                session = _session_from_fields(config, key, fields)
            except CodecError as exc:
                skips.add(exc)
                continue
            if session is None:
                stale.append(member)
            else:
                items.append(session)
        member, score = pairs[-1]
        last = (score, member)
        max_score, after_score, after_member = _score_text(score), score, member
    if stale:  # sessions that expired by TTL leave index entries behind: drop them now
        yield Call(("ZREM", index, *stale))
    more = len(items) == wanted and last is not None
    cursor_out = f"{_score_text(last[0])}:{as_text(last[1])}" if more and last else None
    return SessionPage(Records(items, skips.errors), cursor_out)
