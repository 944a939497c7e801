"""What every plan needs to know about its store: key space, retention, cluster mode."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta

from convstore.keys import KeySpace, SessionKeys
from convstore.limits import DEFAULT_LIMITS, Limits
from convstore.validation import optional_positive_int, optional_seconds, positive_int

__all__ = ["InboxSettings", "Limits", "Retention", "StoreConfig", "now_micros", "seconds_to_ms"]


def seconds_to_ms(value: float | timedelta | None, field: str) -> int:
    """A validated duration in whole milliseconds for Redis (0 = none, else at least 1)."""
    seconds = optional_seconds(value, field)
    return 0 if seconds is None else max(1, round(seconds * 1000))


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history to keep and how long a session lives.

    ``max_messages`` keeps the newest N; ``max_age`` drops messages whose
    timestamp is older (the newest message always stays); ``ttl`` is a sliding
    expiry for all of a session's keys together, refreshed by every write.
    ``None`` means no limit.
    """

    max_messages: int | None = None
    max_age: float | timedelta | None = None
    ttl: float | timedelta | None = None

    def __post_init__(self) -> None:
        optional_positive_int(self.max_messages, "max_messages")
        optional_seconds(self.max_age, "max_age")
        optional_seconds(self.ttl, "ttl")

    def ms(self, field: str) -> int:
        return seconds_to_ms(getattr(self, field), field)


@dataclass(frozen=True, slots=True)
class InboxSettings:
    """Delivery of agent messages to their recipients' inboxes (see ``convstore.inbox``).

    ``deliver``: appends of agent messages are delivered (the store's ``inboxes=True``).
    ``retention``: most entries an inbox keeps (None: no limit); an entry past it that a
    consumer group has not acknowledged goes to the dead letters first, never silently.
    ``dead_letters``: most dead letters kept per recipient (approximately, ``MAXLEN ~``).
    """

    deliver: bool = False
    retention: int | None = 10_000
    dead_letters: int = 10_000

    def __post_init__(self) -> None:
        optional_positive_int(self.retention, "retention")
        positive_int(self.dead_letters, "dead_letters")


def now_micros() -> int:
    """The caller's clock in µs since the epoch (``time.time_ns``: every write sends it,
    and a datetime round trip costs a microsecond)."""
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """What every plan needs to know about the store it runs for."""

    keyspace: KeySpace
    retention: Retention
    cluster: bool = False
    #: Sizes checked before anything is sent, and the largest record reads accept.
    limits: Limits = DEFAULT_LIMITS
    inbox: InboxSettings = InboxSettings()
    #: The script arguments that never change for this store, worked out once: every
    #: append and write sends them. (inline flag, default TTL ms, max messages, max age ms)
    constants: tuple[str, str, str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "constants",
            (
                "0" if self.cluster else "1",
                str(self.retention.ms("ttl")),
                str(self.retention.max_messages or 0),
                str(self.retention.ms("max_age")),
            ),
        )

    def now(self) -> str:
        """The scripts' "now": the caller's clock in µs since the epoch."""
        return str(now_micros())

    def common(self, session_key: str) -> tuple[SessionKeys, tuple[str, str, str, str]]:
        """The session's keys and the four arguments every session script takes (see lua.py)."""
        inline, ttl = self.constants[0], self.constants[1]
        return self.keyspace.session(session_key), (inline, session_key, self.now(), ttl)
