"""One store operation (one plan run) as the drivers see it: its retry bookkeeping, the
write-concern shortfall it raises at the end, and what it reports to metrics and logs
(the operation is also the context every run happens in). No I/O here: the drivers
(``convstore.drivers``) send the steps.
"""

from __future__ import annotations

import logging
import time
from typing import Any, TypeVar

import redis.exceptions as rex

from convstore import monitoring
from convstore.errors import DurabilityNotMet, StoreUnavailable
from convstore.failures import failure_kind, translate, wait_replies
from convstore.plans import Batch, Plan, Run, Step
from convstore.policies import RetryPolicy, WriteConcern

__all__ = ["Operation", "measure", "report"]

T = TypeVar("T")


class Operation:
    """Retry bookkeeping of one store operation (one plan run). Built for every call, so
    it holds slots and works its name out only when a report or an error needs it."""

    __slots__ = (
        "bytes",
        "changed",
        "concern",
        "concerned",
        "failures",
        "hook",
        "messages",
        "observed",
        "plan",
        "retry",
        "session",
        "shortfall",
        "started",
    )  # fmt: skip

    def __init__(
        self,
        plan: Plan[Any],
        retry: RetryPolicy | None,
        concern: WriteConcern,
        hook: monitoring.MetricsHook | None = None,
    ) -> None:
        self.plan = plan
        self.hook = hook
        self.observed = hook is not None or monitoring.get_metrics_hook() is not None
        self.session = ""
        self.messages = 0
        self.bytes = 0
        self.retry = retry
        self.concern = concern
        self.concerned = concern.active  # WAIT / WAITAOF after each write
        self.started = time.monotonic()
        self.failures = 0
        self.changed = False  # a write of this operation may have reached the server
        self.shortfall: tuple[str, int, int] | None = None

    @property
    def name(self) -> str:
        """The plan's name ("append_messages"), for errors, logs and metrics."""
        return getattr(getattr(self.plan, "gi_code", None), "co_name", "operation")

    def succeeded(self, step: Step, reply: Any) -> None:
        self.changed = self.changed or step.writes
        self.failures = 0
        if self.observed:
            measure(self, step, reply)

    def after_failure(self, step: Step, exc: BaseException) -> float:
        """The wait before re-sending ``step``; raises when it must not or cannot be re-sent."""
        kind = failure_kind(exc)
        if kind is None:
            raise exc
        if kind == "lost":
            self.changed = self.changed or step.writes
        retry = self.retry
        self.failures += 1
        remaining = None
        if retry is not None and retry.deadline is not None:
            remaining = retry.deadline - (time.monotonic() - self.started)
        allowed = (
            retry is not None
            and (kind == "refused" or step.safe)
            and self.failures < retry.attempts
            and (remaining is None or remaining > 0)
        )
        if not allowed:
            why = "" if retry is None else f" after {self.failures} attempt(s)"
            if retry is not None and kind == "lost" and not step.safe:
                why += " (this step is not safe to re-send)"
            raise StoreUnavailable(
                f"Redis is unavailable during {self.name}{why}: {exc}",
                outcome="unknown" if self.changed else "not_sent",
            ) from exc
        assert retry is not None
        delay = retry.backoff.compute(self.failures)
        return delay if remaining is None else max(0.0, min(delay, remaining))

    def check_concern(self, replies: list[Any]) -> None:
        """Record a WAIT / WAITAOF shortfall; raised once the plan has its result."""
        found = wait_replies(self.concern, replies)
        if found is not None and self.shortfall is None:
            self.shortfall = found

    def finish(self, result: T) -> T:
        if self.shortfall is not None:
            what, requested, acknowledged = self.shortfall
            raise DurabilityNotMet(
                f"{self.name}: the write WAS applied, but only {acknowledged} of {requested} "
                f"{what} acknowledged it within {self.concern.timeout:g} s",
                what=what,
                requested=requested,
                acknowledged=acknowledged,
                result=result,
            )
        return result

    # The context every run happens in: redis-py failures become convstore errors, and the
    # run is reported to monitoring. Methods of the operation rather than a second object
    # or a ``@contextmanager``: it wraps every store call.

    def __enter__(self) -> Operation:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _tb: Any
    ) -> None:
        outcome, error, translated = "ok", "", None
        if exc is not None:
            outcome = "error"
            if isinstance(exc, rex.RedisError):
                translated = translate(exc, self.name)
                error = type(translated).__name__
            elif isinstance(exc, Exception):
                error = type(exc).__name__
        self.plan.close()
        level = logging.DEBUG if outcome == "ok" else logging.INFO
        if self.observed or monitoring.logger.isEnabledFor(level):
            report(self, outcome, error, level)
        if translated is not None:
            raise translated from exc


def measure(op: Operation, step: Step, reply: Any) -> None:
    """Session, messages and payload bytes of one step (only when a hook listens)."""
    inner = step.steps if isinstance(step, Batch) else (step,)
    replies = reply if isinstance(step, Batch) else (reply,)
    for one, answer in zip(inner, replies, strict=False):
        if isinstance(one, Run):
            if not op.session and one.keys:
                op.session = monitoring.key_hash(one.keys[0])
            op.bytes += sum(len(a) for a in one.args if isinstance(a, bytes))
            op.messages += one.messages
        elif one.args and str(one.args[0]).upper() in ("XRANGE", "XREVRANGE"):
            if not op.session:
                op.session = monitoring.key_hash(str(one.args[1]))
            rows = answer if isinstance(answer, list) else []
            op.messages += len(rows)
            for row in rows:
                fields = row[1]
                values = fields.values() if isinstance(fields, dict) else fields[1::2]
                op.bytes += sum(len(v) for v in values if isinstance(v, bytes))


def report(op: Operation, outcome: str, error: str, level: int) -> None:
    elapsed = time.monotonic() - op.started
    if op.observed:
        labels = {
            "operation": op.name,
            "outcome": outcome,
            "error": error,
            "session": op.session,
            "messages": str(op.messages),
            "bytes": str(op.bytes),
        }
        monitoring.emit("store.operation", elapsed, labels, store_hook=op.hook)
    if monitoring.logger.isEnabledFor(level):
        fields = {
            "operation": op.name,
            "outcome": outcome,
            "duration_ms": round(elapsed * 1000, 3),
            "error": error,
            "session": op.session,
        }
        monitoring.log_event(level, "store.operation", fields)
