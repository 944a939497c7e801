"""Listing sessions by last activity, newest first, in pages.

The index scores trail each session's exact last activity ``la`` by less than
:data:`lua.INDEX_RESOLUTION_US` (appends move them once per second, see ``lua/core.py``):
``score <= la < score + resolution``. So rows are read in score order, each session's
``la`` comes from its hash, and a session is returned once no unread row can be newer:
once the lowest score read is a whole resolution below its ``la``. Pages are ordered by
(``la``, session key), both descending, and the cursor is the last one returned.
"""

from __future__ import annotations

import math
import re
from typing import Any

from convstore import lua
from convstore.errors import CodecError, ValidationError
from convstore.models import ConversationSession, SessionType, parse_choice
from convstore.plans.config import StoreConfig
from convstore.plans.damage import OnError, Skips, located
from convstore.plans.results import Records, SessionPage
from convstore.plans.sessions import SESSION_FIELDS, session_from_fields
from convstore.plans.steps import Batch, Call, Plan, Run
from convstore.plans.values import as_text, epoch_micros
from convstore.validation import limit_or_all

__all__ = ["list_sessions"]

#: Most index rows read per round trip (every round trip when ``limit=None``).
_LIST_CHUNK = 500

#: ``la:member``; whole numbers, but a cursor may carry anything Redis stores (damage).
_CURSOR = re.compile(r"(-?[0-9]{1,20}(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?|[-+]?inf):(.*)", re.DOTALL)


def _parse_cursor(cursor: str | None) -> tuple[float, bytes] | None:
    if cursor is None:
        return None
    found = _CURSOR.fullmatch(cursor) if isinstance(cursor, str) else None
    try:
        member = found.group(2).encode() if found else None
    except UnicodeEncodeError:
        member = None
    if found is None or member is None:
        raise ValidationError(f"not a session cursor: {cursor!r}", field="cursor")
    return float(found.group(1)), member


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


#: A session read from the index: (exact la in µs, index member, the session).
_Found = tuple[int, bytes, ConversationSession]
#: An index row that could not be read: (score, member, the error).
_Damaged = tuple[float, bytes, CodecError]


def _before(position: tuple[float, bytes], bound: tuple[float, bytes] | None) -> bool:
    """Whether ``position`` comes after ``bound`` in newest-first order (None: the start)."""
    return bound is None or position < bound


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
    after = _parse_cursor(cursor)
    # every session after the cursor has la below the cursor's, so a score no higher
    max_score = "+inf" if after is None else _score_text(after[0])
    scanned: tuple[float, bytes] | None = None  # (score, member) of the last index row read
    items: list[ConversationSession] = []
    waiting: list[_Found] = []  # read, but an unread row may still be newer
    damaged: list[_Damaged] = []
    stale: list[bytes] = []
    last: tuple[int, bytes] | None = None  # (la, member) of the last session returned
    exhausted, chunk = False, 0
    while not exhausted and (wanted is None or len(items) < wanted):
        if wanted is None:
            chunk = _LIST_CHUNK
        else:  # what the page still needs, doubling while rows within the resolution wait
            chunk = wanted - len(items) if scanned is None else min(_LIST_CHUNK, 2 * chunk)
        rows = yield Run(lua.LIST, (index,), (max_score, chunk))
        pairs = [(rows[i], float(rows[i + 1])) for i in range(0, len(rows), 2)]
        pairs = [(m, s) for m, s in pairs if _before((s, m), scanned)][:chunk]
        exhausted = not pairs
        if pairs:
            waiting += yield from _read(config, index, pairs, after, damaged, stale)
            member, score = pairs[-1]
            scanned, max_score = (score, member), _score_text(score)
        floor = -math.inf if exhausted or scanned is None else scanned[0] + lua.INDEX_RESOLUTION_US
        waiting.sort(key=lambda f: (f[0], f[1]))  # oldest first: pop() takes the newest
        while waiting and waiting[-1][0] >= floor and (wanted is None or len(items) < wanted):
            la, member, session = waiting.pop()
            items.append(session)
            last = (la, member)
    more = last is not None and len(items) == wanted and not (exhausted and not waiting)
    # a damaged row is reported by the page its score falls in (scores <= la)
    bound = last if more else None
    for score, member, error in damaged:
        if _before((score, member), after) and not (bound and (score, member) < bound):
            skips.add(error)
    if stale:  # sessions that expired by TTL leave index entries behind: drop them now
        yield Call(("ZREM", index, *stale))
    cursor_out = f"{last[0]}:{as_text(last[1])}" if more and last else None
    return SessionPage(Records(items, skips.errors), cursor_out)


def _read(
    config: StoreConfig,
    index: str,
    pairs: list[tuple[bytes, float]],
    after: tuple[float, bytes] | None,
    damaged: list[_Damaged],
    stale: list[bytes],
) -> Plan[list[_Found]]:
    """The sessions ``pairs`` name, with their exact ``la``, that come after the cursor.

    Unreadable rows go to ``damaged``; they stay in the index as found (a read deletes
    nothing it cannot read). Rows whose session expired by TTL go to ``stale``.
    """
    named: list[tuple[bytes, float, str]] = []
    for member, score in pairs:
        try:
            named.append((member, score, _member_key(config, index, member, score)))
        except CodecError as exc:
            damaged.append((score, member, exc))
    replies = yield Batch(
        tuple(
            Call(("HMGET", config.keyspace.session(k).session, *SESSION_FIELDS))
            for _, _, k in named
        )
    )
    found: list[_Found] = []
    for (member, score, key), fields in zip(named, replies, strict=True):
        try:
            session = session_from_fields(config, key, fields)
        except CodecError as exc:
            damaged.append((score, member, exc))
            continue
        if session is None:
            stale.append(member)
            continue
        la = epoch_micros(session.last_activity)
        if _before((la, member), after):
            found.append((la, member, session))
    return found
