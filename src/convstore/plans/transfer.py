"""Plans of export, import, doctor and migrate: whole-session reads and exact restores.

Export reads through :func:`convstore.plans.messages.decode_row` (the store's own reader),
never the stream's raw bytes, so it keeps working when the entry layout changes. Import
writes through the scripts in ``lua_transfer.py``, which take the exported revision, last
activity and stream entry ids, so a restored session is the same session.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from convstore import codec
from convstore.errors import SessionKeyConflict, StoreError
from convstore.lua import transfer as lua_transfer
from convstore.models import ConversationSession, to_utc
from convstore.plans.config import StoreConfig
from convstore.plans.indexes import cluster_index_sync, index_keys, missing_session, split_idx
from convstore.plans.layout import tool_fields
from convstore.plans.messages import decode_row
from convstore.plans.sessions import session_identity
from convstore.plans.steps import Batch, Call, Plan, Run
from convstore.plans.values import as_text

__all__ = [
    "ImportedEntry",
    "SessionState",
    "import_entries",
    "info_section",
    "memory_usage",
    "probe",
    "read_entries",
    "restore_session",
    "scan_index",
    "session_state",
]

_STATE_FIELDS = ("rec", "rev", "la", "n", "mm", "ma", "ttl", "lid")


class SessionState(NamedTuple):
    """What is stored for one session key, undecoded where decoding could fail."""

    record: bytes | None
    revision: int
    last_activity_us: int | None
    count_field: int | None  # the hash's message counter ``n``
    stream_length: int  # XLEN of the history
    max_messages: int | None  # per-session retention overrides (None: store default)
    max_age_ms: int | None
    ttl_ms: int | None
    pttl_ms: int  # the hash's remaining TTL: -1 none, -2 no such key
    last_id: str | None


def _int(raw: Any) -> int | None:
    return None if raw is None else int(raw)


def session_state(config: StoreConfig, key: str) -> Plan[SessionState]:
    """The session hash's fields, the stream length and the TTL, in one round trip."""
    keys = config.keyspace.session(key)
    fields, length, pttl = yield Batch(
        (
            Call(("HMGET", keys.session, *_STATE_FIELDS)),
            Call(("XLEN", keys.messages)),
            Call(("PTTL", keys.session)),
        )
    )
    rec, rev, la, n, mm, ma, ttl, lid = fields
    return SessionState(
        rec,
        int(rev or 0),
        _int(la),
        _int(n),
        int(length),
        _int(mm),
        _int(ma),
        _int(ttl),
        int(pttl),
        None if lid is None else as_text(lid),
    )


def memory_usage(config: StoreConfig, key: str) -> Plan[int]:
    """Bytes the server holds for the session's keys (``MEMORY USAGE``; not on fakeredis)."""
    replies = yield Batch(
        tuple(
            Call(("MEMORY", "USAGE", k, "SAMPLES", "0")) for k in config.keyspace.session(key).all()
        )
    )
    return sum(int(r or 0) for r in replies)


def read_entries(
    config: StoreConfig, key: str, after: str | None, count: int
) -> Plan[list[tuple[str, dict[str, Any]]]]:
    """Up to ``count`` messages after stream id ``after`` (None: from the oldest), oldest
    first, as ``(entry id, ContextEngine dict)``; the dict's metadata has ``message_id``."""
    stream = config.keyspace.session(key).messages
    start = "-" if after is None else f"({after}"
    rows = yield Call(("XRANGE", stream, start, "+", "COUNT", count), raw_reply=True)
    return [(as_text(row[0]), decode_row(config, key, row)) for row in rows]


def scan_index(config: StoreConfig, cursor: str, count: int) -> Plan[tuple[str, list[str]]]:
    """One ``ZSCAN`` step over the namespace's index of sessions: ``(next cursor, keys)``.

    The cursor ("0" = start, "0" back = done) survives restarts, so a walk can resume; an
    element present for the whole walk is returned at least once (possibly twice).
    """
    reply = yield Call(("ZSCAN", config.keyspace.index_all, cursor, "COUNT", count))
    cursor_out, members = reply[0], list(reply[1])
    if members and isinstance(members[0], list | tuple):  # redis-py pairs (member, score)
        keys = [as_text(pair[0]) for pair in members]
    else:
        keys = [as_text(members[i]) for i in range(0, len(members), 2)]
    return str(cursor_out if isinstance(cursor_out, int) else as_text(cursor_out)), keys


def restore_session(
    config: StoreConfig,
    session: ConversationSession,
    *,
    revision: int,
    last_activity_us: int,
    overrides: tuple[int | None, int | None, int | None] = (None, None, None),
) -> Plan[str]:
    """Store ``session`` with the given revision and last activity (µs), idempotently.

    ``overrides``: the session's stored retention fields as :class:`SessionState` has them
    (max messages, max age in ms, TTL in ms; None = the store default, 0 = none). A
    different session owning the key raises :class:`SessionKeyConflict`.
    """
    session.validate()
    key = session.generate_session_key()
    keys, common = config.common(key)
    index = index_keys(config, session)
    reply = yield Run(
        lua_transfer.RESTORE_SESSION,
        keys.all(),
        (
            *common,
            codec.encode_session(session, limits=config.limits),
            session_identity(session),
            str(revision),
            str(last_activity_us),
            "\n".join(index),
            *("" if value is None else str(int(value)) for value in overrides),
        ),
    )
    if int(reply[0]) == -2:
        raise SessionKeyConflict(key, "it is held by another session")
    old = set(split_idx(reply[2])) - set(index)
    yield from cluster_index_sync(config, key, index, old, reply[1])
    return key


class ImportedEntry(NamedTuple):
    """One message to restore, with its own stream entry id."""

    entry_id: str
    message_id: str
    role: str
    content: str
    timestamp: datetime | str
    metadata: dict[str, Any]  # without message_id


def import_entries(config: StoreConfig, key: str, entries: Sequence[ImportedEntry]) -> Plan[int]:
    """Add messages under their own entry ids, skipping stored message ids; returns how
    many were added. An id not after the stream's last one raises :class:`StoreError`."""
    if not entries:
        return 0
    keys, common = config.common(key)
    args: list[Any] = list(common)
    for entry in entries:
        moment = to_utc(entry.timestamp, "timestamp")
        payload = codec.encode_entry(entry.role, entry.content, moment, entry.metadata)
        stored_id = codec.encode_message_id(entry.message_id)
        args += (stored_id, entry.entry_id, payload, tool_fields(entry.metadata))
    reply = yield Run(lua_transfer.IMPORT_ENTRIES, keys.all(), tuple(args), messages=len(entries))
    status = int(reply[0])
    if status == -1:
        yield from missing_session(config, key)
    if status == -4:
        raise StoreError(
            f"session {key!r}: message entry {as_text(reply[1])} cannot be imported "
            f"(a later message is already stored): {as_text(reply[2])}"
        )
    return int(reply[1])


def probe(config: StoreConfig) -> Plan[dict[str, bool]]:
    """Whether Lua scripts and streams work (``doctor``); reads one key that is never written."""
    lua_ok = (yield Run(lua_transfer.PROBE, (), ())) is not None
    stream_ok = int((yield Call(("XLEN", f"{config.keyspace.namespace}:doctor-probe")))) == 0
    return {"lua": lua_ok, "streams": stream_ok}


def info_section(section: str) -> Plan[dict[str, str]]:
    """``INFO section`` as a dict of its ``name:value`` lines (not on fakeredis)."""
    raw = yield Call(("INFO", section), any_node=True)
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith("#"):
            out[name.strip()] = value.strip()
    return out
