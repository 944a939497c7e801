"""Where a live tail of one session starts (``store.messages.follow``)."""

from __future__ import annotations

from typing import Any

from convstore.plans.config import StoreConfig
from convstore.plans.indexes import missing_session
from convstore.plans.steps import Call, Plan
from convstore.plans.values import as_text
from convstore.validation import stream_id_or_none

__all__ = ["follow_start"]


def follow_start(config: StoreConfig, key: str, after: str | None) -> Plan[str]:
    """The cursor to follow from: ``after`` (a stream entry id, "0-0" = from the start), or
    the session's newest entry when None (only what arrives from now on). The session must
    exist: a tail of a mistyped key would wait forever."""
    after = stream_id_or_none(after, "after")
    keys = config.keyspace.session(key)
    exists, newest = yield from _probe(keys.session, keys.messages)
    if not exists:
        yield from missing_session(config, key)
    if after is not None:
        return after
    return as_text(newest[0][0]) if newest else "0-0"


def _probe(session: str, stream: str) -> Plan[tuple[bool, list[Any]]]:
    exists = yield Call(("EXISTS", session))
    newest = yield Call(("XREVRANGE", stream, "+", "-", "COUNT", 1))
    return bool(exists), list(newest)
