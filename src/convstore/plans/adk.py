"""Google ADK session plans: create and append through the store's own plans, with the
ADK state applied in the same script (:mod:`convstore.lua.adk`); reads of one session.

State values arrive already encoded (bytes); the adapter owns the ADK types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from convstore import codec, lua
from convstore.lua import adk as lua_adk
from convstore.models import ConversationSession
from convstore.plans.append import append_messages
from convstore.plans.config import StoreConfig
from convstore.plans.results import AppendResult
from convstore.plans.sessions import create_session
from convstore.plans.steps import Batch, Call, Plan, Run
from convstore.plans.values import as_text

__all__ = [
    "NO_GUARD",
    "Stale",
    "StatePairs",
    "Stored",
    "append_event",
    "create",
    "read",
    "scope_state",
]

T = TypeVar("T")
#: ``expect_newest`` that skips the stale-session check.
NO_GUARD = "*"
STATE_PREFIX = b"adk:s:"


@dataclass(frozen=True, slots=True)
class StatePairs:
    """Encoded state deltas by scope: (key, value) pairs, keys without their prefix."""

    session: Sequence[tuple[str, bytes]] = ()
    app: Sequence[tuple[str, bytes]] = ()
    user: Sequence[tuple[str, bytes]] = ()


class Stale(Exception):
    """The session object's newest event is no longer the stored newest one."""

    def __init__(self, current: str) -> None:
        super().__init__(current)
        self.current = current


@dataclass(frozen=True, slots=True)
class Stored:
    """One session as stored: its hash fields, app and user state, newest entry id."""

    fields: dict[bytes, bytes]
    app_state: dict[bytes, bytes]
    user_state: dict[bytes, bytes]
    newest: str

    @property
    def state(self) -> dict[str, bytes]:
        n = len(STATE_PREFIX)
        return {k[n:].decode(): v for k, v in self.fields.items() if k.startswith(STATE_PREFIX)}


def _state_args(config: StoreConfig, pairs: StatePairs) -> list[Any]:
    args: list[Any] = [str(len(pairs.session)), str(len(pairs.app)), str(len(pairs.user))]
    for group in (pairs.session, pairs.app, pairs.user):
        for key, value in group:
            args += (key, value)
    return args


def _wrapped(
    plan: Plan[T], inner: lua.Script, outer: lua.Script, keys: Sequence[str], extra: Sequence[Any]
) -> Plan[T]:
    """Run ``plan``, sending its ``inner`` script step as ``outer`` with more keys and args."""
    step = next(plan)
    while True:
        if isinstance(step, Run) and step.script is inner:
            args = (str(len(step.args)), *step.args, *extra)
            again = step.resend_args
            resend = None if again is None else (str(len(again)), *again, *extra)
            step = Run(outer, (*step.keys, *keys), args, step.messages, resend)
            reply = yield step
            if isinstance(reply, list) and int(reply[0]) == lua_adk.STALE:
                raise Stale(as_text(reply[1]))
        else:
            reply = yield step
        try:
            step = plan.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def _scoped(
    config: StoreConfig, app_key: str, user_key: str, pairs: StatePairs
) -> tuple[list[str], Plan[None]]:
    """KEYS for the script, and what to write after it on a cluster (other slots)."""

    def after() -> Plan[None]:
        calls = [Call(("HSET", app_key, k, v)) for k, v in pairs.app]
        calls += [Call(("HSET", user_key, k, v)) for k, v in pairs.user]
        if config.cluster and calls:
            yield Batch(tuple(calls))

    return ([] if config.cluster else [app_key, user_key]), after()


def create(
    config: StoreConfig,
    session: ConversationSession,
    app_key: str,
    user_key: str,
    pairs: StatePairs,
    last_update: str,
) -> Plan[str]:
    """Create the session (SessionExists if present) with its state, in one script."""
    keys, after = _scoped(config, app_key, user_key, pairs)
    extra = ["0" if config.cluster else "1", NO_GUARD, "", last_update, *_state_args(config, pairs)]
    key = yield from _wrapped(
        create_session(config, session), lua.SAVE, lua_adk.ADK_CREATE, keys, extra
    )
    yield from after
    return key


def append_event(
    config: StoreConfig,
    key: str,
    message: Mapping[str, Any],
    expect_newest: str,
    app_key: str,
    user_key: str,
    pairs: StatePairs,
    last_update: str,
) -> Plan[AppendResult]:
    """Append one event and apply its state delta in one script.

    ``expect_newest``: the stream id of the newest event the caller's session object saw
    ("0-0" = none, :data:`NO_GUARD` = no check); :class:`Stale` when it changed.
    """
    keys, after = _scoped(config, app_key, user_key, pairs)
    event_id = codec.encode_message_id(message["metadata"]["message_id"])
    extra = [
        "0" if config.cluster else "1",
        expect_newest,
        event_id,
        last_update,
        *_state_args(config, pairs),
    ]
    (result,) = yield from _wrapped(
        append_messages(config, key, (message,)), lua.APPEND, lua_adk.ADK_APPEND, keys, extra
    )
    if result.created:
        yield from after
    return result


def read(config: StoreConfig, key: str, app_key: str, user_key: str) -> Plan[Stored | None]:
    """The session hash, the app and user state, and the newest entry id, in one round trip."""
    keys = config.keyspace.session(key)
    fields, app, user, newest = yield Batch(
        (
            Call(("HGETALL", keys.session)),
            Call(("HGETALL", app_key)),
            Call(("HGETALL", user_key)),
            Call(("XREVRANGE", keys.messages, "+", "-", "COUNT", 1)),
        )
    )
    if not fields or b"rec" not in _dict(fields):
        return None
    return Stored(
        _dict(fields), _dict(app), _dict(user), as_text(newest[0][0]) if newest else "0-0"
    )


def scope_state(key: str) -> Plan[dict[bytes, bytes]]:
    """An app or user state hash."""
    return _dict((yield Call(("HGETALL", key))))


def _dict(reply: Any) -> dict[bytes, bytes]:
    if isinstance(reply, dict):
        return reply
    return {reply[i]: reply[i + 1] for i in range(0, len(reply), 2)}
