"""History edits the agent frameworks need: pop the newest message, rewind, fork.

``pop`` and ``truncate_after`` are one script each (atomic, one slot). ``fork`` spans two
sessions, which live in different cluster slots, so it is a read followed by idempotent
appends: see :func:`fork`.
"""

from __future__ import annotations

import re
from typing import Any

from convstore import codec
from convstore.errors import MessageNotFound, SessionExists
from convstore.lua import edits as lua_edits
from convstore.models import ConversationSession
from convstore.plans.append import append_messages
from convstore.plans.config import StoreConfig
from convstore.plans.indexes import missing_session
from convstore.plans.messages import decode_row
from convstore.plans.sessions import create_session
from convstore.plans.steps import Call, Plan, Run
from convstore.plans.values import as_text
from convstore.validation import non_empty_str

__all__ = ["FORK_CHUNK", "fork", "pop", "resolve_point", "truncate_after"]

#: Messages copied per round trip by :func:`fork`.
FORK_CHUNK = 500
_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


def pop(config: StoreConfig, key: str) -> Plan[dict[str, Any] | None]:
    """The newest message, removed atomically with its idempotency entry; None when empty."""
    keys, common = config.common(key)
    reply = yield Run(lua_edits.POP, keys.all(), common)
    status = int(reply[0])
    if status == -1:
        yield from missing_session(config, key)
    return decode_row(config, key, reply[1]) if status == 1 else None


def _point_args(point: str) -> tuple[bytes, str]:
    """(stored message id, stream id or "") for a point given as either kind of id."""
    non_empty_str(point, "entry_or_message_id")
    return codec.encode_message_id(point), point if _STREAM_ID.fullmatch(point) else ""


def truncate_after(config: StoreConfig, key: str, point: str) -> Plan[int]:
    """Remove every message after ``point`` (a message id, else a stream entry id); the
    message at ``point`` stays. Returns how many were removed."""
    stored, stream_id = _point_args(point)
    keys, common = config.common(key)
    reply = yield Run(lua_edits.TRUNCATE_AFTER, keys.all(), (*common, stored, stream_id))
    status = int(reply[0])
    if status == -1:
        yield from missing_session(config, key)
    if status == 0:
        raise MessageNotFound(key, point)
    return int(reply[1])


def resolve_point(config: StoreConfig, key: str, point: str) -> Plan[str]:
    """The stream entry id of ``point`` (a message id, else an entry id) in session ``key``."""
    stored, stream_id = _point_args(point)
    keys = config.keyspace.session(key)
    found = yield Call(("HGET", keys.ids, stored))
    if found is not None:
        return as_text(found)
    if stream_id and (yield Call(("XRANGE", keys.messages, stream_id, stream_id))):
        return stream_id
    if not (yield Call(("EXISTS", keys.session))):
        yield from missing_session(config, key)
    raise MessageNotFound(key, point)


def fork(
    config: StoreConfig, key: str, new_session: ConversationSession, upto: str | None
) -> Plan[str]:
    """Copy ``key``'s history up to ``upto`` (inclusive; None = all) into ``new_session``.

    The two sessions hash to different cluster slots, so this cannot be one script. It
    fixes the end point first (``upto``, else the newest entry now), creates the new
    session, then copies in chunks of :data:`FORK_CHUNK` with ``append_many`` under the
    *original* message ids and timestamps. Every step touches one slot and the appends
    are idempotent, so a fork interrupted anywhere is completed, without duplicates, by
    running the same call again (the new session then already exists: it is reused).
    Messages appended to the source after the end point was fixed are not copied.
    Returns the new session's key.
    """
    stream = config.keyspace.session(key).messages
    if upto is None:
        newest = yield Call(("XREVRANGE", stream, "+", "-", "COUNT", 1))
        if not newest and not (yield Call(("EXISTS", config.keyspace.session(key).session))):
            yield from missing_session(config, key)
        end = as_text(newest[0][0]) if newest else None
    else:
        end = yield from resolve_point(config, key, upto)
    try:
        new_key = yield from create_session(config, new_session)
    except SessionExists:
        new_key = new_session.generate_session_key()  # a resumed fork
    start = "-"
    while end is not None:
        rows = yield Call(("XRANGE", stream, start, end, "COUNT", FORK_CHUNK))
        if rows:
            yield from append_messages(config, new_key, [decode_row(config, key, r) for r in rows])
        if len(rows) < FORK_CHUNK:
            break
        start = f"({as_text(rows[-1][0])}"
    return new_key
