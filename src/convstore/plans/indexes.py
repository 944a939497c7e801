"""The session indexes: sorted sets of session keys by last activity.

On standalone Redis the scripts update them; on Redis Cluster they live in other slots,
so the plans update them after the script from what it returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from convstore.models import ConversationSession
from convstore.plans.config import StoreConfig
from convstore.plans.steps import Batch, Call, Plan

__all__ = ["cluster_index_sync", "index_keys", "split_idx"]


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
