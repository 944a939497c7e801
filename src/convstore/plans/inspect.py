"""Read-only plans for inspecting a session: its entries with their stream ids, and its
effective retention and remaining TTL (what ``convstore web`` shows; no writes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from convstore.errors import CodecError, ValidationError
from convstore.plans.config import Retention, StoreConfig
from convstore.plans.damage import OnError, Skips
from convstore.plans.indexes import missing_session
from convstore.plans.messages import decode_row
from convstore.plans.results import Records
from convstore.plans.steps import Batch, Call, Plan
from convstore.plans.values import as_text, stored_int
from convstore.validation import positive_int, stream_id_arg

__all__ = ["Entry", "SessionRetention", "entries", "session_retention"]


class Entry(NamedTuple):
    """One stored message and its stream entry id (a cursor for ``after``/``before``)."""

    entry_id: str
    message: dict[str, Any]  # {role, content, timestamp, metadata}, as history() returns


@dataclass(frozen=True, slots=True)
class SessionRetention:
    """The retention a session runs under: ``retention`` is the effective one (its own
    override where set, else the store default); ``overridden`` names the fields the session
    overrides; ``ttl_remaining`` is the seconds left before it expires (None: no expiry)."""

    retention: Retention
    overridden: tuple[str, ...]
    ttl_remaining: float | None


def entries(
    config: StoreConfig,
    key: str,
    after: str | None,
    before: str | None,
    limit: int,
    on_error: OnError = "raise",
) -> Plan[Records[Entry]]:
    """Up to ``limit`` entries, oldest first: the first ones after ``after`` when it is
    given, else the newest ones before ``before`` (None: the newest of all). A damaged
    entry raises, or is left out and listed in ``skipped`` (its ``entry_id`` is a cursor)."""
    limit = positive_int(limit, "limit")
    skips = Skips(on_error, "entries")
    after = None if after is None else stream_id_arg(after, "after")
    before = None if before is None else stream_id_arg(before, "before")
    if after is not None and before is not None:
        raise ValidationError("give after or before, not both", field="after")
    stream = config.keyspace.session(key).messages
    if after is not None:
        command: tuple[Any, ...] = ("XRANGE", stream, f"({after}", "+", "COUNT", limit)
    else:
        end = "+" if before is None else f"({before}"
        command = ("XREVRANGE", stream, end, "-", "COUNT", limit)
    rows: list[Any] = yield Call(command, raw_reply=True)  # decode_row takes either form
    if not rows and not (yield Call(("EXISTS", config.keyspace.session(key).session))):
        yield from missing_session(config, key)
    if after is None:
        rows = list(reversed(rows))
    out: list[Entry] = []
    for row in rows:
        try:
            out.append(Entry(as_text(row[0]), decode_row(config, key, row)))
        except CodecError as exc:
            skips.add(exc)
    return Records(out, skips.errors)


_FIELDS = ("max_messages", "max_age", "ttl")


def session_retention(config: StoreConfig, key: str) -> Plan[SessionRetention]:
    """The session's overrides (``mm``/``ma``/``ttl`` in its hash) over the store defaults."""
    keys = config.keyspace.session(key)
    found, pttl = yield Batch(
        (Call(("HMGET", keys.session, "rev", "mm", "ma", "ttl")), Call(("PTTL", keys.session)))
    )
    if found[0] is None:
        yield from missing_session(config, key)
    values: dict[str, Any] = {
        "max_messages": config.retention.max_messages,
        "max_age": config.retention.max_age,
        "ttl": config.retention.ttl,
    }
    overridden = []
    for name, raw in zip(_FIELDS, found[1:], strict=True):
        if raw is None:
            continue
        number = stored_int(raw, name)
        overridden.append(name)
        values[name] = (
            None if number == 0 else (number if name == "max_messages" else number / 1000)
        )
    remaining = int(pttl)
    return SessionRetention(
        Retention(**values), tuple(overridden), None if remaining < 0 else remaining / 1000
    )
