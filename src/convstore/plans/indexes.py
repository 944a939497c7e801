"""The session indexes: sorted sets of session keys by last activity.

On standalone Redis the scripts update them; on Redis Cluster they live in other slots,
so the plans update them after the script from what it returned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NoReturn

from convstore import lua
from convstore.errors import SessionNotFound
from convstore.models import ConversationSession
from convstore.plans.config import StoreConfig
from convstore.plans.damage import NOT_FOUND, script_status
from convstore.plans.steps import Batch, Call, Plan, Run
from convstore.plans.values import as_text

__all__ = [
    "SUGGESTION_SCAN_BUDGET",
    "cluster_index_sync",
    "index_keys",
    "missing_session",
    "split_idx",
]

#: At most this many index entries are examined for "did you mean" (error path only):
#: ZSCAN costs about 3 µs per entry on Redis 7.0, so at most ~1.5 ms of server time.
SUGGESTION_SCAN_BUDGET = 500
_SCAN_COUNT = 250
_MAX_SUGGESTIONS = 3
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def index_keys(config: StoreConfig, session: ConversationSession) -> list[str]:
    ks, kind = config.keyspace, str(session.session_type)
    keys = [ks.index_all, ks.index_type(kind)]
    for p in session.participants:
        keys += [
            ks.index_participant(p.participant_id),
            ks.index_participant_type(p.participant_id, kind),
        ]
    return keys


def cluster_index_sync(
    config: StoreConfig,
    member: str,
    add: Iterable[str | bytes],
    remove: Iterable[str | bytes],
    score: Any,
) -> Plan[None]:
    """On Redis Cluster the indexes live in other slots: update them after the script."""
    calls = [Call(("ZADD", key, "GT", score, member)) for key in add]
    calls += [Call(("ZREM", key, member)) for key in remove]
    if config.cluster and calls:
        yield Batch(tuple(calls))


def split_idx(raw: bytes | str | None) -> list[str | bytes]:
    """The index keys a script returned; a line that is not UTF-8 stays bytes (never raises).

    The scripts only return lines under the namespace's ``idx:`` prefix, so a damaged
    ``idx`` field cannot make the plan touch keys outside convstore's namespace.
    """
    raw = raw.encode() if isinstance(raw, str) else raw or b""
    return [_text_or_bytes(k) for k in raw.split(b"\n") if k]


def _text_or_bytes(line: bytes) -> str | bytes:
    try:
        return line.decode()
    except UnicodeDecodeError:
        return line


def missing_session(config: StoreConfig, key: str) -> Plan[NoReturn]:
    """Raise :class:`SessionNotFound`, naming stored keys ``key + "_..."`` when ``key`` is a
    session id rather than a session key (``"c2"`` for ``"c2_mc_to_analyst"``).

    Bounded: one script running ZSCAN MATCH over the namespace's index, examining at most
    :data:`SUGGESTION_SCAN_BUDGET` entries; it runs only on this error path.
    """
    pattern = _GLOB_SPECIAL.sub(r"\\\1", key) + "_*"
    found = yield Run(
        lua.SUGGEST,
        (config.keyspace.index_all,),
        (pattern, SUGGESTION_SCAN_BUDGET, _SCAN_COUNT, _MAX_SUGGESTIONS),
    )
    raise SessionNotFound(key, sorted({as_text(m) for m in found})[:_MAX_SUGGESTIONS])


def session_status(config: StoreConfig, reply: Any, key: str) -> Plan[int]:
    """A session script's status: no session raises :class:`SessionNotFound` naming stored
    keys it may have meant; a damaged hash raises :class:`CodecError` (``script_status``)."""
    if int(reply[0]) == NOT_FOUND:
        yield from missing_session(config, key)
    return script_status(reply, key)
