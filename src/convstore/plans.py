"""Every store operation, once, as a sans-IO plan.

A plan is a generator: it validates and encodes its input, yields the Redis
steps it needs (:class:`Call`, :class:`Batch`, :class:`Run`), receives their
raw replies, and returns the decoded result or raises a typed error. It does no
I/O itself, so the sync and the async store drive the very same plans
(``drivers.py``) and nothing here is written twice.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, TypeVar

import msgpack

from convstore import codec, lua
from convstore.errors import (
    CodecError,
    ConcurrentModification,
    SessionKeyConflict,
    SessionNotFound,
    ValidationError,
)
from convstore.keys import KeySpace, SessionKeys
from convstore.models import (
    AgentCommunicationMessage,
    ConversationSession,
    MessageType,
    SessionType,
    parse_choice,
    to_utc,
    utc_now,
)

__all__ = [
    "AppendResult",
    "Batch",
    "Call",
    "HistoryPage",
    "Plan",
    "Retention",
    "Run",
    "SessionPage",
    "StoreConfig",
]

T = TypeVar("T")


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True, slots=True)
class Call:
    """One Redis command."""

    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Run:
    """One Lua script (EVALSHA, loaded on first use)."""

    script: lua.Script
    keys: tuple[str, ...]
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Batch:
    """Several steps in one round trip (a non-transactional pipeline); replies come back in order."""

    steps: tuple[Call | Run, ...]


Step = Call | Run | Batch
Plan = Generator[Step, Any, T]


# --------------------------------------------------------------------------- configuration


def _seconds(value: float | timedelta | None, field: str) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise ValidationError(f"{field} must be a positive number of seconds or None", field=field)
    return float(seconds)


def seconds_to_ms(value: float | timedelta | None, field: str) -> int:
    """A validated duration in whole milliseconds for Redis (0 = none, else at least 1)."""
    seconds = _seconds(value, field)
    return 0 if seconds is None else max(1, round(seconds * 1000))


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history to keep and how long a session lives.

    ``max_messages`` keeps the newest N; ``max_age`` drops messages whose
    timestamp is older (the newest message always stays); ``ttl`` is a sliding
    expiry for all of a session's keys together, refreshed by every write.
    ``None`` means no limit.
    """

    max_messages: int | None = None
    max_age: float | timedelta | None = None
    ttl: float | timedelta | None = None

    def __post_init__(self) -> None:
        mm = self.max_messages
        if mm is not None and (isinstance(mm, bool) or not isinstance(mm, int) or mm < 1):
            raise ValidationError(
                "max_messages must be a positive integer or None", field="max_messages"
            )
        _seconds(self.max_age, "max_age")
        _seconds(self.ttl, "ttl")

    def ms(self, field: str) -> int:
        return seconds_to_ms(getattr(self, field), field)


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """What every plan needs to know about the store it runs for."""

    keyspace: KeySpace
    retention: Retention
    cluster: bool = False

    def common(self, session_key: str) -> tuple[SessionKeys, tuple[str, str, str, str]]:
        """The session's keys and the four arguments every session script takes (see lua.py)."""
        return self.keyspace.session(session_key), (
            "0" if self.cluster else "1",
            session_key,
            str(epoch_micros(utc_now())),
            str(self.retention.ms("ttl")),
        )


# --------------------------------------------------------------------------- results


class AppendResult(NamedTuple):
    """What an append stored: the message id, its stream entry id, and False for a retried id."""

    message_id: str
    entry_id: str
    created: bool


class HistoryPage(NamedTuple):
    """A page of history, oldest first; pass ``cursor`` as ``before`` for the previous page."""

    items: list[dict[str, Any]]
    cursor: str | None


class SessionPage(NamedTuple):
    """Sessions by most recent activity; pass ``cursor`` back for the next page."""

    items: list[ConversationSession]
    cursor: str | None


# --------------------------------------------------------------------------- helpers


def epoch_micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact; floats would round)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_micros(value: bytes | str | int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(value))


def as_text(value: bytes | str) -> str:
    """Redis replies are bytes (``decode_responses=False``); names and ids are UTF-8 text."""
    return value.decode() if isinstance(value, bytes) else value


def _index_keys(config: StoreConfig, session: ConversationSession) -> list[str]:
    ks, kind = config.keyspace, str(session.session_type)
    keys = [ks.index_all, ks.index_type(kind)]
    for p in session.participants:
        keys += [
            ks.index_participant(p.participant_id),
            ks.index_participant_type(p.participant_id, kind),
        ]
    return keys


def _cluster_index_sync(
    config: StoreConfig, member: str, add: Iterable[str], remove: Iterable[str], score: Any
) -> Plan[None]:
    """On Redis Cluster the indexes live in other slots: update them after the script."""
    calls = [Call(("ZADD", key, "GT", score, member)) for key in add]
    calls += [Call(("ZREM", key, member)) for key in remove]
    if config.cluster and calls:
        yield Batch(tuple(calls))


def _split_idx(raw: bytes | str | None) -> list[str]:
    return [k for k in as_text(raw or b"").split("\n") if k]


def _identity(session: ConversationSession) -> bytes:
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
    session.validate()
    key = session.generate_session_key()
    keys, common = config.common(key)
    index = _index_keys(config, session)
    expected = -1 if force else session.revision
    reply = yield Run(
        lua.SAVE,
        keys.all(),
        (
            *common,
            codec.encode_session(session),
            _identity(session),
            expected,
            epoch_micros(session.last_activity),
            "\n".join(index),
        ),
    )
    status = int(reply[0])
    if status == -2:
        raise SessionKeyConflict(key, f"it is held by {_describe_identity(reply[1])}")
    if status == -3:
        raise ConcurrentModification(key, session.revision, int(reply[1]))
    old = set(_split_idx(reply[2])) - set(index)
    yield from _cluster_index_sync(config, key, index, old, reply[1])
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
    return bool((yield Call(("EXISTS", config.keyspace.session(key).session))))


def touch_session(config: StoreConfig, key: str) -> Plan[datetime]:
    keys, common = config.common(key)
    reply = yield Run(lua.TOUCH, keys.all(), common)
    if int(reply[0]) == -1:
        raise SessionNotFound(key)
    yield from _cluster_index_sync(config, key, _split_idx(reply[2]), (), reply[1])
    return from_epoch_micros(reply[1])


def delete_session(config: StoreConfig, key: str) -> Plan[bool]:
    keys, common = config.common(key)
    reply = yield Run(lua.DELETE, keys.all(), common)
    yield from _cluster_index_sync(config, key, (), _split_idx(reply[1]), 0)
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
        raise SessionNotFound(key)


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
    limit: int,
    cursor: str | None,
) -> Plan[SessionPage]:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError("limit must be a positive integer", field="limit")
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
    while len(items) < limit:
        rows = yield Run(lua.LIST, (index,), (max_score, limit - len(items)))
        pairs = [(rows[i], int(float(rows[i + 1]))) for i in range(0, len(rows), 2)]
        if after_score is not None and after_member is not None:
            pairs = [
                (m, s)
                for m, s in pairs
                if s < after_score or (s == after_score and m < after_member)
            ]
        if not pairs:
            break
        pairs = pairs[: limit - len(items)]
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
    more = len(items) == limit and last is not None
    return SessionPage(items, f"{last[0]}:{as_text(last[1])}" if more and last else None)


# --------------------------------------------------------------------------- messages

_ENTRY_KEYS = frozenset(("role", "content", "timestamp", "metadata"))


def new_message_ids(count: int) -> list[str]:
    """``count`` random uuid4 strings from one ``os.urandom`` call (5x cheaper than uuid.uuid4)."""
    raw = os.urandom(16 * count).hex()
    ids = []
    for start in range(0, 32 * count, 32):
        h = raw[start : start + 32]
        variant = "89ab"[int(h[16], 16) & 3]
        ids.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}")
    return ids


def _prepare(
    key: str, message: AgentCommunicationMessage | Mapping[str, Any], fresh_id: str
) -> tuple[str, str, bytes]:
    """(message_id, timestamp in ms, payload) for one message; raises before anything is sent."""
    if isinstance(message, AgentCommunicationMessage):
        if message.session_key != key:
            raise ValidationError(
                f"message.session_key is {message.session_key!r} but it is being appended to {key!r}",
                field="session_key",
            )
        role, content, timestamp = message.role, message.content, message.timestamp
        metadata = message.routing_metadata()
    elif isinstance(message, Mapping):
        extra = set(message) - _ENTRY_KEYS
        if extra:
            raise ValidationError(
                f"a message dict has exactly the keys {sorted(_ENTRY_KEYS)}; unexpected {sorted(extra)}",
                field="message",
            )
        raw_role, raw_content = message.get("role"), message.get("content")
        if not isinstance(raw_role, str) or not raw_role:
            raise ValidationError("role must be a non-empty string", field="role")
        if not isinstance(raw_content, str):
            raise ValidationError(
                f"content must be a string, got {type(raw_content).__name__}", field="content"
            )
        role, content = raw_role, raw_content
        raw_ts = message.get("timestamp")
        timestamp = utc_now() if raw_ts is None else to_utc(raw_ts, "timestamp")
        raw_meta = message.get("metadata")
        if raw_meta is not None and not isinstance(raw_meta, Mapping):
            raise ValidationError(
                f"metadata must be a dict, got {type(raw_meta).__name__}", field="metadata"
            )
        metadata = dict(raw_meta or {})
    else:
        raise ValidationError(
            "a message is an AgentCommunicationMessage or a dict with role and content, "
            f"got {type(message).__name__}",
            field="message",
        )
    message_id = metadata.pop("message_id", None) or fresh_id
    if not isinstance(message_id, str):
        raise ValidationError("metadata.message_id must be a string", field="message_id")
    payload = codec.encode_entry(role, content, timestamp, metadata)
    return message_id, str(max(0, epoch_micros(timestamp) // 1000)), payload


def append_messages(
    config: StoreConfig,
    key: str,
    messages: Iterable[AgentCommunicationMessage | Mapping[str, Any]],
) -> Plan[list[AppendResult]]:
    batch = list(messages)
    prepared = [
        _prepare(key, m, fresh) for m, fresh in zip(batch, new_message_ids(len(batch)), strict=True)
    ]
    if not prepared:  # nothing to write, but an unknown session is still an error
        if not (yield Call(("EXISTS", config.keyspace.session(key).session))):
            raise SessionNotFound(key)
        return []
    keys, common = config.common(key)
    args: list[Any] = [
        *common,
        str(config.retention.max_messages or 0),
        str(config.retention.ms("max_age")),
    ]
    for message_id, ms, payload in prepared:
        args += (codec.encode_message_id(message_id), ms, payload)
    reply = yield Run(lua.APPEND, keys.all(), tuple(args))
    if int(reply[0]) == -1:
        raise SessionNotFound(key)
    yield from _cluster_index_sync(config, key, _split_idx(reply[2]), (), reply[1])
    out = reply[3]
    return [
        AppendResult(mid, as_text(out[2 * i]), bool(int(out[2 * i + 1])))
        for i, (mid, _, _) in enumerate(prepared)
    ]


def _entry(row: Sequence[Any]) -> dict[str, Any]:
    """A stream row (id, {stored message id: payload}) as a ContextEngine dict."""
    fields = row[1]
    if isinstance(fields, dict):
        ((mid, payload),) = fields.items()
    else:
        mid, payload = fields[0], fields[1]
    entry = codec.decode_entry(payload)
    entry["metadata"]["message_id"] = codec.decode_message_id(mid)
    return entry


def _read(config: StoreConfig, key: str, command: tuple[Any, ...]) -> Plan[list[Any]]:
    """Run one XRANGE/XREVRANGE; an empty answer is told apart from a missing session."""
    rows: list[Any] = yield Call(command)
    if not rows and not (yield Call(("EXISTS", config.keyspace.session(key).session))):
        raise SessionNotFound(key)
    return rows


def _positive(value: int | None, field: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValidationError(f"{field} must be a positive integer or None", field=field)


def _ms_bound(value: datetime | str | None, default: str, field: str) -> str:
    return default if value is None else str(max(0, epoch_micros(to_utc(value, field)) // 1000))


def history(
    config: StoreConfig,
    key: str,
    limit: int | None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
) -> Plan[list[dict[str, Any]]]:
    _positive(limit, "limit")
    stream = config.keyspace.session(key).messages
    start, end = _ms_bound(since, "-", "since"), _ms_bound(until, "+", "until")
    if limit is None:
        rows = yield from _read(config, key, ("XRANGE", stream, start, end))
        return [_entry(r) for r in rows]
    rows = yield from _read(config, key, ("XREVRANGE", stream, end, start, "COUNT", limit))
    return [_entry(r) for r in reversed(rows)]


_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


def page(config: StoreConfig, key: str, before: str | None, limit: int) -> Plan[HistoryPage]:
    _positive(limit, "limit")
    if before is not None and not (isinstance(before, str) and _STREAM_ID.fullmatch(before)):
        raise ValidationError(f"not a history cursor: {before!r}", field="before")
    stream = config.keyspace.session(key).messages
    end = "+" if before is None else f"({before}"
    rows = yield from _read(config, key, ("XREVRANGE", stream, end, "-", "COUNT", limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = as_text(rows[-1][0]) if more else None
    return HistoryPage([_entry(r) for r in reversed(rows)], cursor)


#: Routing keys every stored agent message carries; entries without them are plain messages.
_AGENT_KEYS = frozenset(("sender_id", "sender_type", "recipient_id", "recipient_type"))


def agent_messages(
    config: StoreConfig,
    key: str,
    message_types: Iterable[str] | None,
    sender_id: str | None,
    limit: int | None,
    chunk: int = 500,
) -> Plan[list[AgentCommunicationMessage]]:
    """Agent messages (those with routing metadata), filtered first, then the newest ``limit``."""
    _positive(limit, "limit")
    wanted = None
    if message_types is not None:
        wanted = {str(parse_choice(t, MessageType, "message_types")) for t in message_types}
    stream = config.keyspace.session(key).messages
    found: list[AgentCommunicationMessage] = []
    end = "+"
    while limit is None or len(found) < limit:
        rows = yield from _read(config, key, ("XREVRANGE", stream, end, "-", "COUNT", chunk))
        for row in rows:
            entry = _entry(row)
            meta = entry["metadata"]
            if not _AGENT_KEYS <= meta.keys() or (
                sender_id is not None and meta["sender_id"] != sender_id
            ):
                continue  # a plain ContextEngine message (a lone "sender_id" does not make one)
            if wanted is not None and meta.get("message_type", "communication") not in wanted:
                continue
            try:
                found.append(AgentCommunicationMessage.from_conversation_message_dict(entry, key))
            except ValidationError as exc:
                raise CodecError(
                    f"stored agent message {as_text(row[0])} is invalid: {exc}"
                ) from exc
            if limit is not None and len(found) == limit:
                break
        if len(rows) < chunk:
            break
        end = f"({as_text(rows[-1][0])}"
    found.reverse()
    return found


def count(config: StoreConfig, key: str) -> Plan[int]:
    keys, common = config.common(key)
    reply = yield Run(lua.COUNT, keys.all(), common)
    if int(reply[0]) == -1:
        raise SessionNotFound(key)
    return int(reply[1])


def delete_message(config: StoreConfig, key: str, message_id: str) -> Plan[bool]:
    if not isinstance(message_id, str) or not message_id:
        raise ValidationError("message_id must be a non-empty string", field="message_id")
    keys, common = config.common(key)
    reply = yield Run(
        lua.DELETE_MESSAGE, keys.all(), (*common, codec.encode_message_id(message_id))
    )
    if int(reply[0]) == -1:
        raise SessionNotFound(key)
    return bool(int(reply[0]))


def clear(config: StoreConfig, key: str) -> Plan[int]:
    keys, common = config.common(key)
    reply = yield Run(lua.CLEAR, keys.all(), common)
    if int(reply[0]) == -1:
        raise SessionNotFound(key)
    return int(reply[1])
