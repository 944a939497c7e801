"""Message plans: read (newest N, pages, time ranges, agent messages), count, delete,
clear. Appending is in ``plans/append.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from convstore import codec, lua
from convstore.errors import CodecError, ValidationError
from convstore.models import (
    REQUIRED_ROUTING_KEYS,
    AgentCommunicationMessage,
    MessageType,
    parse_choice,
)
from convstore.plans.config import StoreConfig
from convstore.plans.damage import OnError, Skips, located
from convstore.plans.indexes import missing_session, session_status
from convstore.plans.reading import (
    decode_fields,
    decode_reference,
    decode_rows,
    decode_stored,
    reference_fields,
    stored_fields,
)
from convstore.plans.results import HistoryPage, Records, StoredMessage
from convstore.plans.steps import Call, Plan, Run
from convstore.plans.values import as_text, ms_bound
from convstore.validation import limit_or_all, stream_id_arg

__all__ = [
    "agent_messages",
    "clear",
    "count",
    "decode_all",
    "decode_row",
    "delete_message",
    "history",
    "page",
    "read_messages",
    "reference_history",
]

T = TypeVar("T")

#: A read form: the one-pass decoder of a whole reply and the careful decoder of one row
#: (``plans/reading.py``), which names the damage when the first one fails.
_Form = tuple[Callable[..., Records[T]], Callable[[Sequence[Any], int], T]]
_DICTS: _Form[dict[str, Any]] = (decode_rows, decode_fields)
_TYPED: _Form[StoredMessage] = (decode_stored, stored_fields)
_REFERENCE: _Form[dict[str, Any]] = (decode_reference, reference_fields)


def decode_row(config: StoreConfig, key: str, row: Sequence[Any]) -> dict[str, Any]:
    """A stream row (id, fields), either stored layout (see ``plans/layout.py``), as a
    ContextEngine dict.

    Anything else (other fields, bad bytes) raises :class:`CodecError` naming the key and entry.
    """
    return _located(decode_fields, config, key, row)


def decode_all(
    config: StoreConfig,
    key: str,
    rows: Sequence[Sequence[Any]],
    *,
    newest_first: bool = False,
    reference: bool = False,
) -> list[dict[str, Any]]:
    """:func:`decode_row` of every row, oldest first (``newest_first``: the rows came newest
    first), in the one-pass loop the history reads use; a damaged row raises, located.
    ``reference``: in the shapes the reference ContextEngine returns (``plans/reference.py``)."""
    form = _REFERENCE if reference else _DICTS
    return _decoded(form, config, key, rows, Skips("raise", ""), newest_first)


def _located(
    decode: Callable[[Sequence[Any], int], T], config: StoreConfig, key: str, row: Sequence[Any]
) -> T:
    try:
        return decode(row, config.limits.max_record_bytes)
    except CodecError as exc:
        raise located(exc, key, _entry_id(row)) from exc


def _entry_id(row: Sequence[Any]) -> str | None:
    try:
        return as_text(row[0])
    except (CodecError, IndexError, TypeError):
        return None


def _decoded(
    form: _Form[T],
    config: StoreConfig,
    key: str,
    rows: Sequence[Sequence[Any]],
    skips: Skips,
    newest_first: bool,
) -> Records[T]:
    """The reply in ``form``: in one pass while every row decodes; on damage, row by row
    with the careful decoder, which raises (or skips) what it was, located."""
    all_rows, one_row = form
    try:
        return all_rows(rows, config.limits.max_record_bytes, newest_first=newest_first)
    except Exception:  # noqa: BLE001 - the loop below raises (or skips) what it was, located
        pass
    out: list[T] = []
    for row in rows[::-1] if newest_first else rows:
        try:
            out.append(_located(one_row, config, key, row))
        except CodecError as exc:
            skips.add(exc)
    return Records(out, skips.errors)


def _read(config: StoreConfig, key: str, command: tuple[Any, ...]) -> Plan[list[Any]]:
    """Run one XRANGE/XREVRANGE; an empty answer is told apart from a missing session."""
    rows: list[Any] = yield Call(command, raw_reply=True)  # the decoders take either form
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
    on_error: OnError = "raise",
) -> Plan[Records[dict[str, Any]]]:
    skips = Skips(on_error, "history")
    return (yield from _history(config, key, limit, since, until, skips, _DICTS))


def read_messages(
    config: StoreConfig,
    key: str,
    limit: int | None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    on_error: OnError = "raise",
) -> Plan[Records[StoredMessage]]:
    """:func:`history` as :class:`StoredMessage` values (no ISO text, no id text made)."""
    skips = Skips(on_error, "read")
    return (yield from _history(config, key, limit, since, until, skips, _TYPED))


def reference_history(
    config: StoreConfig, key: str, limit: int | None
) -> Plan[Records[dict[str, Any]]]:
    """:func:`history` in the shapes the reference ContextEngine returns
    (``plans/reference.py``), made in the read loop: the ContextEngine adapter's read of
    every stored message (``include_compacted``)."""
    skips = Skips("raise", "history")
    return (yield from _history(config, key, limit, None, None, skips, _REFERENCE))


def _history(
    config: StoreConfig,
    key: str,
    limit: int | None,
    since: datetime | str | None,
    until: datetime | str | None,
    skips: Skips,
    form: _Form[T],
) -> Plan[Records[T]]:
    """All of the history between ``since`` and ``until`` (XRANGE), or its newest ``limit``
    (XREVRANGE, walked backwards), oldest first, in ``form``."""
    limit = limit_or_all(limit)
    stream = config.keyspace.session(key).messages
    start, end = ms_bound(since, "-", "since"), ms_bound(until, "+", "until")
    if limit is None:
        rows = yield from _read(config, key, ("XRANGE", stream, start, end))
        return _decoded(form, config, key, rows, skips, False)
    rows = yield from _read(config, key, ("XREVRANGE", stream, end, start, "COUNT", limit))
    return _decoded(form, config, key, rows, skips, True)


def page(
    config: StoreConfig,
    key: str,
    before: str | None,
    limit: int | None,
    on_error: OnError = "raise",
) -> Plan[HistoryPage]:
    limit = limit_or_all(limit)
    skips = Skips(on_error, "page")
    if before is not None:
        stream_id_arg(before, "before")
    stream = config.keyspace.session(key).messages
    end = "+" if before is None else f"({before}"
    count = () if limit is None else ("COUNT", limit + 1)
    rows = yield from _read(config, key, ("XREVRANGE", stream, end, "-", *count))
    more = limit is not None and len(rows) > limit
    rows = rows[:limit]
    cursor = as_text(rows[-1][0]) if more else None
    items = _decoded(_DICTS, config, key, rows, skips, True)
    return HistoryPage(items, cursor)


#: Routing keys every stored agent message carries; entries without them are plain messages.
_AGENT_KEYS = frozenset(REQUIRED_ROUTING_KEYS)


def agent_messages(
    config: StoreConfig,
    key: str,
    message_types: Iterable[str] | None,
    sender_id: str | None,
    limit: int | None,
    chunk: int = 500,
    on_error: OnError = "raise",
) -> Plan[Records[AgentCommunicationMessage]]:
    """Agent messages (those with routing metadata), filtered first, then the newest ``limit``."""
    limit = limit_or_all(limit)
    skips = Skips(on_error, "agent_messages")
    wanted = None
    if message_types is not None:
        wanted = {str(parse_choice(t, MessageType, "message_types")) for t in message_types}
    stream = config.keyspace.session(key).messages
    found: list[AgentCommunicationMessage] = []
    end = "+"
    while limit is None or len(found) < limit:
        rows = yield from _read(config, key, ("XREVRANGE", stream, end, "-", "COUNT", chunk))
        for row in rows:
            try:
                message = _agent_message(config, key, row, wanted, sender_id)
            except CodecError as exc:
                skips.add(exc)
                continue
            if message is None:
                continue
            found.append(message)
            if limit is not None and len(found) == limit:
                break
        if len(rows) < chunk:
            break
        end = f"({as_text(rows[-1][0])}"
    found.reverse()
    return Records(found, skips.errors)


def _agent_message(
    config: StoreConfig,
    key: str,
    row: Sequence[Any],
    wanted: set[str] | None,
    sender_id: str | None,
) -> AgentCommunicationMessage | None:
    """The row as an agent message, None when it is not one or is filtered out."""
    entry = decode_row(config, key, row)
    meta = entry["metadata"]
    if not _AGENT_KEYS <= meta.keys() or (sender_id is not None and meta["sender_id"] != sender_id):
        return None  # a plain ContextEngine message (a lone "sender_id" does not make one)
    kind = meta.get("message_type", "communication")
    try:
        if not isinstance(kind, str):
            raise ValidationError(
                f"message_type must be a str, got {kind!r:.80}", field="message_type"
            )
        if wanted is not None and kind not in wanted:
            return None
        return AgentCommunicationMessage.from_conversation_message_dict(entry, key)
    except (ValidationError, TypeError, ValueError) as exc:
        raise located(
            CodecError(f"stored agent message is invalid: {exc}"), key, as_text(row[0])
        ) from exc


def count(config: StoreConfig, key: str) -> Plan[int]:
    keys, common = config.common(key)
    reply = yield Run(lua.COUNT, keys.all(), common)
    yield from session_status(config, reply, key)
    return int(reply[1])


def delete_message(config: StoreConfig, key: str, message_id: str) -> Plan[bool]:
    if not isinstance(message_id, str) or not message_id:
        raise ValidationError("message_id must be a non-empty string", field="message_id")
    keys, common = config.common(key)
    reply = yield Run(
        lua.DELETE_MESSAGE, keys.all(), (*common, codec.encode_message_id(message_id))
    )
    return bool((yield from session_status(config, reply, key)))


def clear(config: StoreConfig, key: str) -> Plan[int]:
    keys, common = config.common(key)
    reply = yield Run(lua.CLEAR, keys.all(), common)
    yield from session_status(config, reply, key)
    return int(reply[1])
