"""The store's retry policy and write concern: small typed values the drivers apply.

Kept out of the drivers so the store, the adapters and the tests can build and
inspect them without touching I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from redis.backoff import AbstractBackoff, ExponentialWithJitterBackoff

from convstore.errors import ValidationError
from convstore.validation import non_negative_int, optional_seconds, positive_int

__all__ = ["DEFAULT_RETRY", "Durability", "RetryPolicy", "WriteConcern"]

Durability = Literal["default", "fsync"]


def _default_backoff() -> AbstractBackoff:
    return ExponentialWithJitterBackoff(base=0.02, cap=0.5)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a store operation survives connection errors and timeouts.

    A step that failed with a connection error or a timeout is sent again only when
    it is safe to repeat (see ``convstore.plans.steps``): reads, appends (their ids
    are fixed before the first send) and idempotent writes. ``attempts`` counts every
    send of one step, the first included. ``deadline`` (seconds, None = none) bounds
    the whole operation: no retry starts after it, and a backoff wait never runs past
    it. A single attempt is bounded by the client's ``socket_timeout``.
    """

    attempts: int = 30
    backoff: AbstractBackoff = field(default_factory=_default_backoff)
    deadline: float | None = 10.0

    def __post_init__(self) -> None:
        positive_int(self.attempts, "attempts")
        if not isinstance(self.backoff, AbstractBackoff):
            raise ValidationError(
                "backoff must be a redis.backoff.AbstractBackoff instance, for example "
                "ExponentialWithJitterBackoff(base=0.02, cap=0.5)",
                field="backoff",
            )
        optional_seconds(self.deadline, "deadline")


#: What a store uses unless told otherwise (``retry=None`` disables retries).
DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True, slots=True)
class WriteConcern:
    """What "acknowledged" means for a write.

    ``replicas``: the write's own connection sends ``WAIT replicas timeout`` right
    after it, in the same pipeline; fewer acknowledgements raise
    :class:`~convstore.errors.DurabilityNotMet` (the write itself was applied).
    ``durability="fsync"``: ``WAITAOF 1 0 timeout`` the same way, so an
    acknowledged write is in the primary's fsynced AOF (Redis/Valkey >= 7.2 with
    ``appendonly yes``). ``timeout`` is in seconds.
    """

    replicas: int = 0
    durability: Durability = "default"
    timeout: float = 1.0

    def __post_init__(self) -> None:
        non_negative_int(self.replicas, "wait_replicas")
        if self.durability not in ("default", "fsync"):
            raise ValidationError(
                f"durability must be 'default' or 'fsync', got {self.durability!r}",
                field="durability",
                allowed=("default", "fsync"),
            )
        optional_seconds(self.timeout, "wait_timeout")

    @property
    def active(self) -> bool:
        return self.replicas > 0 or self.durability == "fsync"

    @property
    def timeout_ms(self) -> int:
        return max(1, round(self.timeout * 1000))

    def with_replicas(self, replicas: int | None) -> WriteConcern:
        """This concern with a per-call ``wait_replicas`` override (None keeps the store's)."""
        if replicas is None:
            return self
        return WriteConcern(replicas, self.durability, self.timeout)
