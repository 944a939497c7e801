"""Message plans: append, read (newest N, pages, time ranges, agent messages), delete."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from convstore import codec, lua
from convstore.errors import CodecError, ValidationError
from convstore.models import (
    ENTRY_KEYS,
    REQUIRED_ROUTING_KEYS,
    AgentCommunicationMessage,
    MessageType,
    parse_choice,
    to_utc,
    utc_now,
)
from convstore.plans.config import StoreConfig
from convstore.plans.indexes import cluster_index_sync, missing_session, split_idx
from convstore.plans.results import AppendResult, HistoryPage
from convstore.plans.sessions import session_exists
from convstore.plans.steps import Call, Plan, Run
from convstore.plans.values import as_text, epoch_micros, ms_bound
from convstore.validation import limit_or_all

__all__ = [
    "agent_messages",
    "append_messages",
    "clear",
    "count",
    "decode_row",
    "delete_message",
    "history",
    "new_message_ids",
    "page",
]

_ENTRY_KEYS = frozenset(ENTRY_KEYS)


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
    *,
    unsaved_ok: bool = False,
) -> Plan[list[AppendResult]]:
    """Append atomically; ``unsaved_ok`` keeps messages of a session never saved (the
    ContextEngine adapter's contract) instead of raising :class:`SessionNotFound`."""
    batch = list(messages)
    prepared = [
        _prepare(key, m, fresh) for m, fresh in zip(batch, new_message_ids(len(batch)), strict=True)
    ]
    if not prepared:  # nothing to write, but an unknown session is still an error
        if not unsaved_ok and not (yield from session_exists(config, key)):
            yield from missing_session(config, key)
        return []
    keys, common = config.common(key)
    args: list[Any] = [
        *common,
        str(config.retention.max_messages or 0),
        str(config.retention.ms("max_age")),
        "1" if unsaved_ok else "0",
    ]
    for message_id, ms, payload in prepared:
        args += (codec.encode_message_id(message_id), ms, payload)
    reply = yield Run(lua.APPEND, keys.all(), tuple(args))
    if int(reply[0]) == -1:
        yield from missing_session(config, key)
    yield from cluster_index_sync(config, key, split_idx(reply[2]), (), reply[1])
    out = reply[3]
    return [
        AppendResult(mid, as_text(out[2 * i]), bool(int(out[2 * i + 1])))
        for i, (mid, _, _) in enumerate(prepared)
    ]


def decode_row(row: Sequence[Any]) -> dict[str, Any]:
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
        yield from missing_session(
            config, key
        )  # (a key only appended to by the adapter has a hash)
    return rows


def history(
    config: StoreConfig,
    key: str,
    limit: int | None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
) -> Plan[list[dict[str, Any]]]:
    limit = limit_or_all(limit)
    stream = config.keyspace.session(key).messages
    start, end = ms_bound(since, "-", "since"), ms_bound(until, "+", "until")
    if limit is None:
        rows = yield from _read(config, key, ("XRANGE", stream, start, end))
        return [decode_row(r) for r in rows]
    rows = yield from _read(config, key, ("XREVRANGE", stream, end, start, "COUNT", limit))
    return [decode_row(r) for r in reversed(rows)]


_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


def page(config: StoreConfig, key: str, before: str | None, limit: int | None) -> Plan[HistoryPage]:
    limit = limit_or_all(limit)
    if before is not None and not (isinstance(before, str) and _STREAM_ID.fullmatch(before)):
        raise ValidationError(f"not a history cursor: {before!r}", field="before")
    stream = config.keyspace.session(key).messages
    end = "+" if before is None else f"({before}"
    count = () if limit is None else ("COUNT", limit + 1)
    rows = yield from _read(config, key, ("XREVRANGE", stream, end, "-", *count))
    more = limit is not None and len(rows) > limit
    rows = rows[:limit]
    cursor = as_text(rows[-1][0]) if more else None
    return HistoryPage([decode_row(r) for r in reversed(rows)], cursor)


#: Routing keys every stored agent message carries; entries without them are plain messages.
_AGENT_KEYS = frozenset(REQUIRED_ROUTING_KEYS)


def agent_messages(
    config: StoreConfig,
    key: str,
    message_types: Iterable[str] | None,
    sender_id: str | None,
    limit: int | None,
    chunk: int = 500,
) -> Plan[list[AgentCommunicationMessage]]:
    """Agent messages (those with routing metadata), filtered first, then the newest ``limit``."""
    limit = limit_or_all(limit)
    wanted = None
    if message_types is not None:
        wanted = {str(parse_choice(t, MessageType, "message_types")) for t in message_types}
    stream = config.keyspace.session(key).messages
    found: list[AgentCommunicationMessage] = []
    end = "+"
    while limit is None or len(found) < limit:
        rows = yield from _read(config, key, ("XREVRANGE", stream, end, "-", "COUNT", chunk))
        for row in rows:
            entry = decode_row(row)
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
        yield from missing_session(config, key)
    return int(reply[1])


def delete_message(config: StoreConfig, key: str, message_id: str) -> Plan[bool]:
    if not isinstance(message_id, str) or not message_id:
        raise ValidationError("message_id must be a non-empty string", field="message_id")
    keys, common = config.common(key)
    reply = yield Run(
        lua.DELETE_MESSAGE, keys.all(), (*common, codec.encode_message_id(message_id))
    )
    if int(reply[0]) == -1:
        yield from missing_session(config, key)
    return bool(int(reply[0]))


def clear(config: StoreConfig, key: str) -> Plan[int]:
    keys, common = config.common(key)
    reply = yield Run(lua.CLEAR, keys.all(), common)
    if int(reply[0]) == -1:
        yield from missing_session(config, key)
    return int(reply[1])
