"""redis-py's failures, classified (retry or not) and mapped to convstore's errors.

One table, so the drivers and the README say the same thing:

==========================================  =======================================
redis-py                                    convstore
==========================================  =======================================
ConnectionError, TimeoutError, socket       StoreUnavailable (after the retries)
BusyLoadingError, TryAgain, CLUSTERDOWN,    retried like a connection error (the
READONLY, MOVED/ASK (direct pipelines)      command did not run), then StoreUnavailable
AuthenticationError, WRONGPASS, NOAUTH      AuthenticationFailed
NoPermissionError (NOPERM), AuthorizationE  PermissionDenied
InvalidResponse                             ProtocolError
DataError                                   CodecError
ClusterError, RedisClusterException, ...    ClusterError
any other ResponseError / RedisError        StoreError
==========================================  =======================================
"""

from __future__ import annotations

from typing import Any, Literal

import redis.exceptions as rex

from convstore.errors import (
    AuthenticationFailed,
    ClusterError,
    CodecError,
    ConvstoreError,
    DurabilityUnsupported,
    PermissionDenied,
    ProtocolError,
    StoreError,
)
from convstore.policies import WriteConcern

__all__ = ["failure_kind", "translate", "wait_replies"]

#: Refusals that mean the command did not run: safe to re-send whatever it was.
_REFUSED = (
    rex.BusyLoadingError,
    rex.TryAgainError,
    rex.ClusterDownError,
    rex.ReadOnlyError,
    rex.MaxConnectionsError,
    rex.AskError,  # MovedError too: only seen from a node's own pipeline (write concern)
)
_AUTH = (rex.AuthenticationError, rex.AuthenticationWrongNumberOfArgsError)
_NOT_TRANSIENT = (*_AUTH, rex.AuthorizationError, rex.ExternalAuthProviderError)
_NEVER_SENT_MARKS = ("connecting to", "No connection available", "Too many connections")


def failure_kind(exc: BaseException) -> Literal["refused", "lost"] | None:
    """``"refused"``: the command did not run; ``"lost"``: it was sent and its reply is
    missing (it may have run); None: not a transient failure (never retried)."""
    if isinstance(exc, (ConvstoreError, *_NOT_TRANSIENT)):
        return None
    if isinstance(exc, _REFUSED):
        return "refused"
    if isinstance(exc, rex.ConnectionError | rex.TimeoutError):
        text = str(exc)
        return "refused" if any(mark in text for mark in _NEVER_SENT_MARKS) else "lost"
    if isinstance(exc, OSError):
        return "lost"
    return None


def translate(exc: rex.RedisError, operation: str) -> ConvstoreError:
    """The convstore error for a redis-py failure that is not retried (the cause is chained
    by the caller with ``raise ... from exc``)."""
    text = str(exc)
    upper = text.upper()
    if isinstance(exc, _AUTH) or upper.startswith(("NOAUTH", "WRONGPASS")):
        return AuthenticationFailed(f"Redis refused the credentials during {operation}: {text}")
    if isinstance(exc, rex.NoPermissionError | rex.AuthorizationError) or upper.startswith(
        "NOPERM"
    ):
        return PermissionDenied(f"the Redis ACL refused {operation}: {text}")
    if isinstance(exc, rex.InvalidResponse):
        return ProtocolError(
            f"the server did not answer in the Redis protocol during {operation} "
            f"(is something else listening on that port?): {text}"
        )
    if isinstance(exc, rex.DataError):
        return CodecError(f"a value could not be sent to Redis during {operation}: {text}")
    if isinstance(
        exc,
        rex.ClusterError
        | rex.RedisClusterException
        | rex.AskError
        | rex.ClusterCrossSlotError
        | rex.SlotNotCoveredError,
    ):
        return ClusterError(f"Redis Cluster failed {operation}: {text}")
    return StoreError(f"Redis refused a command during {operation}: {text}")


def wait_replies(concern: WriteConcern, replies: list[Any]) -> tuple[str, int, int] | None:
    """Check the replies of WAIT / WAITAOF sent after a write: a shortfall as
    (what, requested, acknowledged), None when met; unsupported servers raise."""
    position = 0
    if concern.replicas:
        reply = replies[position]
        position += 1
        if isinstance(reply, Exception):
            raise reply
        if int(reply) < concern.replicas:
            return "replicas", concern.replicas, int(reply)
    if concern.durability == "fsync":
        reply = replies[position]
        if isinstance(reply, rex.ResponseError):
            text = str(reply)
            if "unknown command" in text.lower() or "appendonly" in text.lower():
                raise DurabilityUnsupported(
                    "durability='fsync' needs WAITAOF (Redis or Valkey >= 7.2) on a server "
                    f"with appendonly yes; the server said: {text}. The write itself WAS applied."
                ) from reply
            raise reply
        if isinstance(reply, Exception):
            raise reply
        if int(reply[0]) < 1:
            return "local AOF fsyncs", 1, int(reply[0])
    return None
