"""Plans of the ContextEngine adapter: SessionMetrics fields, side records, compacted views.

The adapter (``convstore.adapters.contextengine``) keeps aiecs's SessionMetrics counters,
checkpoints, task contexts and compaction state beside the store's own data, under the
same hash tag; the fields are listed in ``lua.py``. Every write here is one script.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, NamedTuple

from convstore import codec, lua
from convstore.errors import CodecError, SessionNotFound
from convstore.models import to_utc
from convstore.plans.config import StoreConfig
from convstore.plans.indexes import cluster_index_sync, split_idx
from convstore.plans.messages import decode_all
from convstore.plans.reference import reference_entry
from convstore.plans.steps import Batch, Call, Plan, Run
from convstore.plans.values import as_text, epoch_micros, from_epoch_micros, stream_order

__all__ = [
    "CHECKPOINTS",
    "SESSION_FIELDS",
    "TASK",
    "WRITES",
    "View",
    "call",
    "calls",
    "compact",
    "put",
    "session_metrics",
    "update",
    "view",
]

#: SessionMetrics keys, in the reference's order.
SESSION_FIELDS = (
    "session_id",
    "user_id",
    "created_at",
    "last_activity",
    "request_count",
    "error_count",
    "total_processing_time",
    "status",
)

#: Positions (1-based, as in Lua) of the side keys in ``SessionKeys.all()``.
CHECKPOINTS, WRITES, TASK = 4, 5, 6

Require = Literal["session", "record"]


def call(command: tuple[Any, ...]) -> Plan[Any]:
    """One plain command (reads of the side keys)."""
    return (yield Call(command))


def calls(commands: Sequence[tuple[Any, ...]]) -> Plan[list[Any]]:
    """Several plain commands in one round trip; their replies in order."""
    if not commands:
        return []
    return list((yield Batch(tuple(Call(c) for c in commands))))


def update(
    config: StoreConfig,
    key: str,
    *,
    require: Require,
    bump: bool,
    last_activity: datetime | None = None,
    incr_requests: int = 0,
    incr_errors: int = 0,
    add_time: float = 0.0,
    fields: Mapping[str, str] | None = None,
) -> Plan[bool]:
    """Set adapter fields and counters atomically; False when ``require`` is not met.

    ``require="session"`` needs a ContextEngine session under ``key`` (an agent conversation
    key is not one); ``"record"`` needs any saved session.
    """
    keys, common = config.common(key)
    args: list[Any] = [
        *common,
        require,
        "1" if bump else "0",
        "" if last_activity is None else str(epoch_micros(to_utc(last_activity, "last_activity"))),
        str(incr_requests),
        str(incr_errors),
        repr(float(add_time)),
    ]
    for name, value in (fields or {}).items():
        args += [name, value]
    reply = yield Run(lua.CE_UPDATE, keys.all(), tuple(args))
    if int(reply[0]) == -1:
        return False
    if reply[1] not in (b"0", "0", 0):
        yield from cluster_index_sync(config, key, split_idx(reply[2]), (), reply[1])
    return True


def put(
    config: StoreConfig, key: str, slot: int, field: str, value: bytes, ttl_ms: int, nx: bool
) -> Plan[bool]:
    """Store a checkpoint, a write batch or the task context; False if ``nx`` and present."""
    keys, common = config.common(key)
    args = (*common, str(slot), field, value, str(ttl_ms), "1" if nx else "0")
    return bool(int((yield Run(lua.CE_PUT, keys.all(), args))))


_METRIC_FIELDS = ("rec", "la", "ce:uid", "ce:ca", "ce:rq", "ce:er", "ce:pt", "ce:st", "ce")


def session_metrics(config: StoreConfig, key: str) -> Plan[dict[str, Any] | None]:
    """The SessionMetrics of ``key`` with datetime values, or None if it holds none.

    Reads both layouts: the current one (``ce:uid``/``ce:ca``) and layout 1 (``ce`` =
    ``"session"``, user and creation time taken from the session record).
    """
    raw = yield Call(("HMGET", config.keyspace.session(key).session, *_METRIC_FIELDS))
    record, la, uid, ca, rq, er, pt, st, legacy = raw
    if uid is not None and ca is not None:
        user_id, created = as_text(uid), from_epoch_micros(ca)
    elif legacy is not None and as_text(legacy) == "session" and record is not None:
        session = codec.decode_session(record)
        user = session.get_participant_by_type_and_role("user")
        user_id, created = (user.participant_id if user else ""), session.created_at
    else:
        return None
    try:
        return {
            "session_id": key,
            "user_id": user_id,
            "created_at": created,
            "last_activity": created if la is None else from_epoch_micros(la),
            "request_count": int(rq or 0),
            "error_count": int(er or 0),
            "total_processing_time": float(pt or 0.0),
            "status": "active" if st is None else as_text(st),
        }
    except (ValueError, OverflowError, UnicodeDecodeError) as exc:
        raise CodecError(f"session {key!r}: unreadable ContextEngine counters: {exc}") from None


class View(NamedTuple):
    """A compacted view: the summary (or None), the boundary (stream id, or None), and the
    newest messages from the boundary on with their stream ids, oldest first."""

    summary: dict[str, Any] | None
    boundary: str | None
    entries: list[dict[str, Any]]
    ids: list[str]


def view(config: StoreConfig, key: str, limit: int, *, reference: bool = False) -> Plan[View]:
    """The newest ``limit`` (0 = all) messages of the compacted view, in one round trip:
    the boundary and summary, then the rows, in one pipeline (not a script: handing rows
    back through Lua costs about four times reading them). The rows are read after the
    boundary, so a compaction in between shows the view as it was just before it (a
    compaction never deletes a message); ``compact`` then refuses the stale boundary.
    ``reference``: the summary and the messages in the shapes the reference ContextEngine
    returns (``plans/reference.py``), made in the read loop itself."""
    keys = config.keyspace.session(key)
    if limit == 0:
        read: tuple[Any, ...] = ("XRANGE", keys.messages, "-", "+")
    else:
        read = ("XREVRANGE", keys.messages, "+", "-", "COUNT", limit)
    fields = Call(("HMGET", keys.session, "ce:cb", "ce:sum"), raw_reply=True)
    (boundary, summary), rows = yield Batch((fields, Call(read, raw_reply=True)))
    newest_first = limit != 0
    start = None if boundary is None else as_text(boundary) or None
    if start is not None:
        try:
            at = stream_order(start)
        except ValueError:
            raise CodecError(
                f"session {key!r}: its compaction boundary (ce:cb) is no stream id: {start!r:.60}",
                key=key,
            ) from None
        rows = _from_boundary(rows, at, newest_first)
    return View(
        _summary(summary, reference) if summary else None,
        start,
        decode_all(config, key, rows, newest_first=newest_first, reference=reference),
        [as_text(r[0]) for r in (rows[::-1] if newest_first else rows)],
    )


def _summary(stored: bytes, reference: bool) -> dict[str, Any]:
    entry = codec.decode_entry(stored)
    return reference_entry(entry) if reference else entry


def _from_boundary(
    rows: Sequence[Sequence[Any]], boundary: tuple[int, int], newest_first: bool
) -> Sequence[Sequence[Any]]:
    """The rows at or after ``boundary``: a prefix of newest-first rows, a suffix of the
    others (found by bisection: a full read of a long compacted session is most rows)."""
    if newest_first:
        for index, row in enumerate(rows):
            if stream_order(row[0]) < boundary:
                return rows[:index]
        return rows
    return rows[bisect_left(rows, boundary, key=lambda row: stream_order(row[0])) :]


def compact(
    config: StoreConfig, key: str, *, seen: str | None, boundary: str, summary: bytes | None
) -> Plan[bool]:
    """Move the view's boundary (and summary); False when another compaction came first."""
    keys, common = config.common(key)
    args = (*common, seen or "", boundary, summary or b"")
    reply = yield Run(lua.CE_COMPACT, keys.all(), args)
    if int(reply[0]) == -1:
        raise SessionNotFound(key)
    return bool(int(reply[0]))
