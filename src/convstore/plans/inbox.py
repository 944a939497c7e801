"""Inbox plans: deliver a session's agent messages to their recipients, consume, dead-letter.

The session stream is the *outbox*. An append with delivery enabled marks the session in
the namespace's outbox set (before the append), runs the ordinary append plan, then
:func:`deliver_session`: it reads the session's entries after its delivery cursor (hash
field ``dl``), copies each agent message to ``inbox:{recipient}`` (idempotent on session
key + message_id, in the inbox's own slot), and moves the cursor forward. Every step is
in one slot, so it runs on Redis Cluster unchanged. A crash between the append and the
delivery leaves entries after the cursor: the next delivery of that session, or
:func:`repair` (the sweeper, driven by the outbox set), delivers them with their original
session entry id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgpack

from convstore.errors import CodecError, ValidationError
from convstore.lua import inbox as lua_inbox
from convstore.models import REQUIRED_ROUTING_KEYS, AgentCommunicationMessage, utc_now
from convstore.plans.append import append_messages
from convstore.plans.config import StoreConfig
from convstore.plans.messages import decode_row
from convstore.plans.results import AppendResult
from convstore.plans.steps import Batch, Call, Plan, Run
from convstore.plans.values import as_text, epoch_micros, from_epoch_micros

__all__ = [
    "DELIVERY_BATCH",
    "DeadLetter",
    "InboxEntry",
    "ack",
    "append_and_deliver",
    "append_plan",
    "dead_letters",
    "decode_entry",
    "delete_inbox",
    "deliver_session",
    "ensure_group",
    "reclaim",
    "reject",
    "repair",
]

#: Session entries read per delivery round trip.
DELIVERY_BATCH = 200
_ROUTING = frozenset(REQUIRED_ROUTING_KEYS)


def _pack_fields(fields: Any) -> bytes:
    """A stream row's fields, as stored, in one blob (the inbox never interprets them)."""
    pairs = (
        list(fields.items())
        if isinstance(fields, Mapping)
        else list(zip(fields[::2], fields[1::2], strict=True))
    )
    return bytes(msgpack.packb([list(p) for p in pairs], use_bin_type=True))


def _dedup_key(session_key: str, message_id: str) -> str:
    return f"{len(session_key)}:{session_key}{message_id}"


def append_and_deliver(
    config: StoreConfig,
    key: str,
    messages: Iterable[AgentCommunicationMessage | Mapping[str, Any]],
    *,
    expect_last: str | None = None,
) -> Plan[list[AppendResult]]:
    """The ordinary append, bracketed by the outbox mark and the delivery."""
    yield Call(("ZADD", config.keyspace.outbox, "GT", epoch_micros(utc_now()) // 1000, key))
    results = yield from append_messages(config, key, messages, expect_last=expect_last)
    yield from deliver_session(config, key)
    return results


def deliver_session(config: StoreConfig, key: str, batch: int = DELIVERY_BATCH) -> Plan[int]:
    """Deliver every agent message after the session's cursor; returns how many were new."""
    keys = config.keyspace.session(key)
    settings = config.inbox
    retention = str(settings.retention or 0)
    fresh = 0
    while True:
        _, rows = yield Run(lua_inbox.OUTBOX_READ, (keys.session, keys.messages), (batch,))
        if not rows:
            return fresh
        by_inbox: dict[str, list[Any]] = {}
        for row in rows:
            entry = decode_row(config, key, row)
            meta = entry["metadata"]
            if not _ROUTING <= meta.keys():
                continue  # a plain message: nobody to deliver it to
            args = by_inbox.setdefault(str(meta["recipient_id"]), [])
            args += (key, row[0], _dedup_key(key, meta["message_id"]), _pack_fields(row[1]))
        for recipient, args in by_inbox.items():
            inbox = config.keyspace.inbox(recipient)
            reply = yield Run(
                lua_inbox.INBOX_DELIVER, inbox.all(), (retention, settings.dead_letters, *args)
            )
            fresh += int(reply)
        yield Run(lua_inbox.OUTBOX_ADVANCE, (keys.session,), (as_text(rows[-1][0]),))
        if len(rows) < batch:
            return fresh


def repair(config: StoreConfig, older_than_ms: int, limit: int) -> Plan[int]:
    """The sweeper: deliver what crashed appends left behind, for sessions marked in the
    outbox set at least ``older_than_ms`` ago (at most ``limit`` sessions)."""
    outbox = config.keyspace.outbox
    cutoff = epoch_micros(utc_now()) // 1000 - older_than_ms
    marked = yield Call(("ZRANGE", outbox, "-inf", cutoff, "BYSCORE", "LIMIT", 0, limit))
    fresh = 0
    for member in marked:
        session_key = as_text(member)
        fresh += yield from deliver_session(config, session_key)
        yield Run(lua_inbox.OUTBOX_FORGET, (outbox,), (session_key, cutoff))
    return fresh


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One decoded inbox entry."""

    inbox_id: str
    session_key: str
    session_entry_id: str
    message: AgentCommunicationMessage


def _fields(raw: Any) -> dict[bytes, bytes]:
    if isinstance(raw, Mapping):
        return {bytes(k): bytes(v) for k, v in raw.items()}
    items = list(raw)
    return {bytes(items[i]): bytes(items[i + 1]) for i in range(0, len(items), 2)}


def _decode_fields(
    config: StoreConfig, fields: Mapping[bytes, bytes]
) -> tuple[str, str, AgentCommunicationMessage]:
    session_key, entry_id = as_text(fields[b"s"]), as_text(fields[b"e"])
    stored = {bytes(k): bytes(v) for k, v in msgpack.unpackb(fields[b"r"], raw=True)}
    entry = decode_row(config, session_key, (entry_id, stored))
    message = AgentCommunicationMessage.from_conversation_message_dict(entry, session_key)
    return session_key, entry_id, message


def decode_entry(config: StoreConfig, row: Sequence[Any]) -> InboxEntry:
    """An inbox stream row as an :class:`InboxEntry`; :class:`CodecError` if it is not one."""
    inbox_id = as_text(row[0])
    try:
        session_key, entry_id, message = _decode_fields(config, _fields(row[1]))
    except (KeyError, ValueError, TypeError, ValidationError, msgpack.UnpackException) as exc:
        raise CodecError(f"inbox entry {inbox_id} is not a delivered message: {exc}") from exc
    return InboxEntry(inbox_id, session_key, entry_id, message)


def ensure_group(config: StoreConfig, recipient_id: str, group: str) -> Plan[bool]:
    """Create the consumer group (from the inbox's start) unless it exists; True if created."""
    inbox = config.keyspace.inbox(recipient_id)
    return bool((yield Run(lua_inbox.INBOX_GROUP, (inbox.stream,), (group,))))


def ack(
    config: StoreConfig, recipient_id: str, group: str, consumer: str, inbox_id: str
) -> Plan[bool]:
    inbox = config.keyspace.inbox(recipient_id)
    return bool((yield Run(lua_inbox.INBOX_ACK, (inbox.stream,), (group, consumer, inbox_id))))


def reject(
    config: StoreConfig, recipient_id: str, group: str, consumer: str, inbox_id: str, reason: str
) -> Plan[bool]:
    """Dead-letter an entry this consumer owns, with ``reason``; False if it does not own it."""
    if not isinstance(reason, str) or not reason:
        raise ValidationError("reason must be a non-empty string", field="reason")
    inbox = config.keyspace.inbox(recipient_id)
    args = (group, consumer, inbox_id, reason, config.inbox.dead_letters)
    return bool((yield Run(lua_inbox.INBOX_REJECT, inbox.all(), args)))


def reclaim(
    config: StoreConfig,
    recipient_id: str,
    group: str,
    consumer: str,
    idle_ms: int,
    count: int,
    max_deliveries: int,
) -> Plan[tuple[list[Any], int]]:
    """Dead-letter idle entries delivered ``max_deliveries`` times, claim up to ``count`` of
    the other idle ones for ``consumer``; returns (claimed rows, how many were dead-lettered)."""
    inbox = config.keyspace.inbox(recipient_id)
    args = (group, consumer, idle_ms, count, max_deliveries, config.inbox.dead_letters)
    claimed, buried = yield Run(lua_inbox.INBOX_RECLAIM, inbox.all(), args)
    return [row for row in claimed if row is not None and row[1] is not None], int(buried)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that left an inbox unacknowledged, and why. ``message`` is None when the
    entry could not be decoded (``error`` says why) or was already gone."""

    dead_id: str
    at: datetime
    reason: str
    group: str
    consumer: str
    deliveries: int
    inbox_id: str
    session_key: str | None
    session_entry_id: str | None
    message: AgentCommunicationMessage | None
    error: str | None = None


def _dead_letter(config: StoreConfig, row: Sequence[Any]) -> DeadLetter:
    dead_id = as_text(row[0])
    fields = _fields(row[1])
    message = session_key = entry_id = error = None
    if b"r" in fields:
        try:
            session_key, entry_id, message = _decode_fields(config, fields)
        except (KeyError, ValueError, TypeError, ValidationError, msgpack.UnpackException) as exc:
            error = f"undecodable: {exc}"
    return DeadLetter(
        dead_id,
        from_epoch_micros(int(dead_id.split("-")[0]) * 1000),
        as_text(fields[b"reason"]),
        as_text(fields[b"group"]),
        as_text(fields[b"consumer"]),
        int(fields[b"deliveries"]),
        as_text(fields[b"inbox_id"]),
        session_key,
        entry_id,
        message,
        error,
    )


def dead_letters(config: StoreConfig, recipient_id: str, limit: int) -> Plan[list[DeadLetter]]:
    """The newest ``limit`` dead letters of one recipient, oldest first."""
    dead = config.keyspace.inbox(recipient_id).dead
    rows = yield Call(("XREVRANGE", dead, "+", "-", "COUNT", limit))
    return [_dead_letter(config, r) for r in reversed(rows)]


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """One consumer group of an inbox (from ``XINFO GROUPS``).

    ``delivered`` entries were handed to its consumers; ``pending`` of them are not yet
    acknowledged; ``acknowledged`` = ``delivered - pending`` (acked by a consumer, or
    settled by moving to the dead letters); ``lag``: entries not yet handed out (None
    when the server cannot tell)."""

    name: str
    consumers: int
    delivered: int
    pending: int
    acknowledged: int
    lag: int | None


@dataclass(frozen=True, slots=True)
class InboxStatus:
    """What an inbox holds: entries kept, dead letters, and each group's progress."""

    recipient_id: str
    entries: int
    dead_letters: int
    groups: tuple[GroupStatus, ...]


def _group_status(raw: Any) -> GroupStatus:
    pairs = raw.items() if isinstance(raw, Mapping) else zip(raw[::2], raw[1::2], strict=True)
    info: dict[bytes, Any] = {k.encode() if isinstance(k, str) else bytes(k): v for k, v in pairs}
    delivered = int(info.get(b"entries-read") or 0)
    pending = int(info[b"pending"])
    lag = info.get(b"lag")
    return GroupStatus(
        as_text(info[b"name"]),
        int(info[b"consumers"]),
        delivered,
        pending,
        max(0, delivered - pending),
        None if lag is None else int(lag),
    )


def inbox_status(config: StoreConfig, recipient_id: str) -> Plan[InboxStatus]:
    """The counts of one recipient's inbox: pending, acknowledged and dead-lettered."""
    keys = config.keyspace.inbox(recipient_id)
    entries, dead, exists = yield Batch(
        (Call(("XLEN", keys.stream)), Call(("XLEN", keys.dead)), Call(("EXISTS", keys.stream)))
    )
    groups: tuple[GroupStatus, ...] = ()
    if exists:
        try:
            rows = yield Call(("XINFO", "GROUPS", keys.stream))
            groups = tuple(_group_status(row) for row in rows)
        except (KeyError, ValueError, TypeError) as exc:
            raise CodecError(f"inbox {recipient_id!r}: unreadable group info: {exc}") from exc
    return InboxStatus(recipient_id, int(entries), int(dead), groups)


def append_plan(
    config: StoreConfig,
    key: str,
    messages: Iterable[AgentCommunicationMessage | Mapping[str, Any]],
    *,
    expect_last: str | None = None,
) -> Plan[list[AppendResult]]:
    """What ``messages.append`` runs: with delivery when the store has ``inboxes=True``."""
    if config.inbox.deliver:
        return append_and_deliver(config, key, messages, expect_last=expect_last)
    return append_messages(config, key, messages, expect_last=expect_last)


def delete_inbox(config: StoreConfig, recipient_id: str) -> Plan[bool]:
    """Drop a recipient's inbox, its consumer groups, dedup index and dead letters."""
    return bool((yield Call(("DEL", *config.keyspace.inbox(recipient_id).all()))))
