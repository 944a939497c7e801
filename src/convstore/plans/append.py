"""Appending messages: validation and encoding before anything is sent, then one APPEND
script per call (``lua/messages.py``: idempotent by message id, retention, tool-call
groups, compare-and-append)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from convstore import codec, lua
from convstore.errors import CodecError, StaleAppend, ValidationError
from convstore.models import ENTRY_KEYS, AgentCommunicationMessage, to_utc, utc_now
from convstore.plans.config import StoreConfig
from convstore.plans.indexes import cluster_index_sync, missing_session, session_status, split_idx
from convstore.plans.layout import tool_fields
from convstore.plans.results import AppendResult
from convstore.plans.sessions import session_exists
from convstore.plans.steps import Plan, Run
from convstore.plans.values import as_text, epoch_micros
from convstore.validation import stream_id_arg, within_limit

__all__ = ["STALE", "append_messages", "new_message_ids", "prepare_message"]

_ENTRY_KEYS = frozenset(ENTRY_KEYS)

#: APPEND's status when ``expect_last`` is not the newest entry id (see lua/messages.py).
STALE = -5


def new_message_ids(count: int) -> list[str]:
    """``count`` random uuid4 strings from one ``os.urandom`` call (5x cheaper than uuid.uuid4)."""
    return [text for text, _ in _fresh_ids(count)]


def _fresh_ids(count: int) -> list[tuple[str, bytes]]:
    """``count`` new uuid4 message ids (:func:`_uuid4`) from one ``os.urandom`` call."""
    raw = os.urandom(16 * count)
    return [_uuid4(bytearray(raw[start : start + 16])) for start in range(0, 16 * count, 16)]


def _uuid4(raw: bytearray) -> tuple[str, bytes]:
    """A uuid4 message id made of 16 random bytes (marked in place): its text and its
    stored form (``encode_message_id``), built from the same bytes, not parsed back."""
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}", b"\x00" + raw


def _from_dict(message: Mapping[str, Any]) -> tuple[str, str, datetime, dict[str, Any]]:
    """(role, content, aware UTC timestamp, a copy of the metadata) of a message dict.

    The common case (str role and content, no timestamp, a dict of metadata) is cleared
    in one test; anything else is checked field by field, for the error that names it.
    """
    role, content = message.get("role"), message.get("content")
    raw_ts, raw_meta = message.get("timestamp"), message.get("metadata")
    if (
        type(role) is str
        and role
        and type(content) is str
        and raw_ts is None
        and type(raw_meta) is dict
        and _ENTRY_KEYS.issuperset(message)
    ):
        return role, content, utc_now(), raw_meta.copy()
    if not _ENTRY_KEYS.issuperset(message):
        extra = sorted(set(message) - _ENTRY_KEYS)
        raise ValidationError(
            f"a message dict has exactly the keys {sorted(_ENTRY_KEYS)}; unexpected {extra}",
            field="message",
        )
    if not isinstance(role, str) or not role:
        raise ValidationError("role must be a non-empty string", field="role")
    if not isinstance(content, str):
        raise ValidationError(
            f"content must be a string, got {type(content).__name__}", field="content"
        )
    timestamp = utc_now() if raw_ts is None else to_utc(raw_ts, "timestamp")
    if raw_meta is None:
        return role, content, timestamp, {}
    if not isinstance(raw_meta, Mapping):
        raise ValidationError(
            f"metadata must be a dict, got {type(raw_meta).__name__}", field="metadata"
        )
    return role, content, timestamp, dict(raw_meta)


def prepare_message(
    config: StoreConfig,
    key: str,
    message: AgentCommunicationMessage | Mapping[str, Any],
    *,
    fresh: tuple[str, bytes] | None = None,
) -> tuple[str, bool, bytes, str, bytes]:
    """(message_id, whether it was generated here, then APPEND's three arguments: stored
    id, "<timestamp ms>[\t<tool fields>]", payload) for one message; raises before
    anything is sent. ``fresh``: the id to give a message without one (None: a new one).
    Every check the client makes on a message is here (``benchmarks.floor`` measures it
    alone, without the plan around it).
    """
    if type(message) is dict or (
        isinstance(message, Mapping) and not isinstance(message, AgentCommunicationMessage)
    ):
        role, content, timestamp, metadata = _from_dict(message)
    elif isinstance(message, AgentCommunicationMessage):
        if message.session_key != key:
            raise ValidationError(
                f"message.session_key is {message.session_key!r} but it is being appended to {key!r}",
                field="session_key",
            )
        role, content = message.role, message.content
        timestamp, metadata = to_utc(message.timestamp), message.routing_metadata()
    else:
        raise ValidationError(
            "a message is an AgentCommunicationMessage or a dict with role and content, "
            f"got {type(message).__name__}",
            field="message",
        )
    message_id = metadata.pop("message_id", None)
    generated = not message_id
    if generated:
        message_id, stored_id = fresh or _uuid4(bytearray(os.urandom(16)))
    elif isinstance(message_id, str):
        stored_id = codec.encode_message_id(message_id)
    else:
        raise ValidationError("metadata.message_id must be a string", field="message_id")
    limits = config.limits
    payload = codec.pack_entry(role, content, timestamp, metadata, limits=limits)
    tools = tool_fields(metadata) if metadata else ""
    size = len(payload) + len(stored_id) + len(tools)
    if size > limits.max_record_bytes:
        within_limit(size, limits.max_record_bytes, "record", "max_record_bytes")
    at = str(max(0, epoch_micros(timestamp) // 1000))
    return message_id, generated, stored_id, f"{at}\t{tools}" if tools else at, payload


def _prepare_all(
    config: StoreConfig, key: str, batch: Sequence[AgentCommunicationMessage | Mapping[str, Any]]
) -> list[tuple[str, bool, bytes, str, bytes]]:
    """Every message checked and encoded, and the batch within its limits, before a send."""
    limits = config.limits
    if len(batch) == 1:  # the common case, without the batch bookkeeping
        return [prepare_message(config, key, batch[0])]
    within_limit(
        len(batch), limits.max_batch_messages, "messages", "max_batch_messages", unit="messages"
    )
    prepared, total = [], 0
    for index, (message, fresh) in enumerate(zip(batch, _fresh_ids(len(batch)), strict=True)):
        try:
            item = prepare_message(config, key, message, fresh=fresh)
        except ValidationError as exc:
            raise ValidationError(f"messages[{index}]: {exc}", field=exc.field) from exc
        total += len(item[2]) + len(item[4])
        within_limit(total, limits.max_batch_bytes, "messages", "max_batch_bytes")
        prepared.append(item)
    return prepared


def append_messages(
    config: StoreConfig,
    key: str,
    messages: Iterable[AgentCommunicationMessage | Mapping[str, Any]],
    *,
    unsaved_ok: bool = False,
    expect_last: str | None = None,
) -> Plan[list[AppendResult]]:
    """Append atomically; ``unsaved_ok`` keeps messages of a session never saved (the
    ContextEngine adapter's contract) instead of raising :class:`SessionNotFound`.

    ``expect_last`` (compare-and-append): the stream entry id the caller saw last
    (``"0-0"`` = no message); when the session's newest entry id differs, nothing is
    written and :class:`StaleAppend` says what it is. A retry whose messages are all
    stored already succeeds regardless (idempotent).
    """
    expected = "" if expect_last is None else stream_id_arg(expect_last, "expect_last")
    batch = messages if isinstance(messages, list | tuple) else list(messages)
    prepared = _prepare_all(config, key, batch)
    if not prepared:  # nothing to write, but an unknown session is still an error
        if not unsaved_ok and not (yield from session_exists(config, key)):
            yield from missing_session(config, key)
        return []
    inline, ttl, max_messages, max_age = config.constants
    unsaved = 1 if unsaved_ok else 0
    common = f"{config.now()} {ttl} {max_messages} {max_age} {expected or '*'}"
    if len(prepared) == 1:  # the common case, without a list built per message
        fresh = 1 if prepared[0][1] else 0
        per_message: Sequence[Any] = prepared[0][2:]
    else:
        fresh = 1 if all([item[1] for item in prepared]) else 0  # every id generated here: see lua
        per_message = [arg for item in prepared for arg in item[2:]]
    args = (f"{inline}{unsaved}{fresh} {common}", key, *per_message)  # lua/core.py: packed
    resend = (f"{inline}{unsaved}0 {common}", key, *per_message) if fresh else None
    keys = config.keyspace.session(key).encoded
    reply = yield Run(lua.APPEND, keys, args, len(prepared), resend)
    if not isinstance(reply, bytes | str):  # a status: damage refuses before any write
        status = yield from session_status(config, reply, key)
        if status == STALE:
            raise StaleAppend(key, expected, as_text(reply[1]))
        raise CodecError(f"APPEND replied with status {status} for session {key!r}", key=key)
    la, entries, idx = _append_reply(reply)
    if config.cluster:
        yield from cluster_index_sync(config, key, split_idx(idx), (), la)
    if len(prepared) == 1 == len(entries):
        entry = entries[0]
        return [AppendResult(prepared[0][0], entry[:-1], entry[-1] == "+")]
    return [
        AppendResult(item[0], entry[:-1], entry[-1] == "+")
        for item, entry in zip(prepared, entries, strict=True)
    ]


def _append_reply(reply: bytes | str) -> tuple[str, list[str], bytes | str]:
    """(last activity, one "<entry id><+|=>" per message, index keys) of APPEND's reply;
    the index keys stay as sent (``split_idx`` keeps a non-UTF-8 line as bytes)."""
    if isinstance(reply, str):
        head, _, idx = reply.partition("\n")
        la, *entries = head.split(" ")
        return la, entries, idx
    raw_head, _, raw_idx = reply.partition(b"\n")
    la, *entries = raw_head.decode("ascii").split(" ")
    return la, entries, raw_idx
