"""The two thin drivers that run plans: one blocking, one asyncio.

Everything an operation means lives in ``convstore.plans``; here is "send this step,
hand back the reply", the store's retry policy (only steps that declare themselves
safe to repeat are re-sent, see ``plans.steps``), the write concern (WAIT / WAITAOF
on the write's own connection, in the same pipeline), and the translation of
redis-py's failures (``convstore.failures``). The async driver also coalesces the
single steps of concurrent tasks into shared round trips; a failed round trip is
retried by each task for its own step only, so another task's unsafe step is never
re-sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TypeVar

import redis.exceptions as rex

from convstore import monitoring
from convstore.connections import inspect_client
from convstore.errors import ConfigurationError, DurabilityNotMet, StoreUnavailable
from convstore.failures import failure_kind, translate, wait_replies
from convstore.lua import Script
from convstore.plans import Batch, Call, Plan, Run, Step
from convstore.policies import DEFAULT_RETRY, RetryPolicy, WriteConcern

__all__ = ["AsyncDriver", "SyncDriver"]

T = TypeVar("T")


class _Operation:
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
            _measure(self, step, reply)

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


def _measure(op: _Operation, step: Step, reply: Any) -> None:
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


class _Translated:
    """Map redis-py failures to convstore errors and report the operation to monitoring.

    A plain class rather than ``@contextmanager``: it wraps every store call, and a
    generator-based context manager costs more than the rest of the driver together.
    """

    __slots__ = ("op", "plan")

    def __init__(self, op: _Operation, plan: Plan[Any]) -> None:
        self.op, self.plan = op, plan

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _tb: Any
    ) -> None:
        op = self.op
        outcome, error, translated = "ok", "", None
        if exc is not None:
            outcome = "error"
            if isinstance(exc, rex.RedisError):
                translated = translate(exc, op.name)
                error = type(translated).__name__
            elif isinstance(exc, Exception):
                error = type(exc).__name__
        self.plan.close()
        level = logging.DEBUG if outcome == "ok" else logging.INFO
        if op.observed or monitoring.logger.isEnabledFor(level):
            _report(op, outcome, error, level)
        if translated is not None:
            raise translated from exc


def _report(op: _Operation, outcome: str, error: str, level: int) -> None:
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


def _routing(client: Any, step: Call) -> dict[str, Any]:
    """A cluster client sends a keyless ``any_node`` command to its default node."""
    if step.any_node and inspect_client(client):
        return {"target_nodes": client.get_default_node()}
    return {}


class _ScriptCache:
    def __init__(self, client: Any) -> None:
        self._client = client
        self._scripts: dict[str, Any] = {}

    def __call__(self, script: Script) -> Any:
        found = self._scripts.get(script.name)
        if found is None:
            found = self._scripts[script.name] = self._client.register_script(script.source)
        return found


def _concern_calls(concern: WriteConcern) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []
    if concern.replicas:
        calls.append(("WAIT", concern.replicas, concern.timeout_ms))
    if concern.durability == "fsync":
        calls.append(("WAITAOF", 1, 0, concern.timeout_ms))
    return calls


class _Driver:
    def __init__(
        self,
        client: Any,
        *,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        concern: WriteConcern | None = None,
        cluster: bool = False,
        metrics_hook: monitoring.MetricsHook | None = None,
    ) -> None:
        self.client = client
        self.metrics_hook = metrics_hook
        self.retry = retry
        self.concern = concern or WriteConcern()
        self.cluster = cluster
        self._script = _ScriptCache(client)

    def _operation(self, plan: Plan[Any], wait_replicas: int | None) -> _Operation:
        concern = self.concern.with_replicas(wait_replicas)
        return _Operation(plan, self.retry, concern, self.metrics_hook)


class SyncDriver(_Driver):
    """Runs plans on a ``redis.Redis`` or ``redis.cluster.RedisCluster``."""

    def run(self, plan: Plan[T], *, wait_replicas: int | None = None) -> T:
        op = self._operation(plan, wait_replicas)
        with _Translated(op, plan):
            try:
                step = next(plan)
                while True:
                    step = plan.send(self._attempt(op, step))
            except StopIteration as stop:
                result: T = stop.value
        return op.finish(result)

    def _attempt(self, op: _Operation, step: Step) -> Any:
        while True:
            try:
                if op.concerned and isinstance(step, Run) and step.writes:
                    reply = self._send_concerned(op, step)
                else:
                    reply = self._execute(step)
            except Exception as exc:  # noqa: BLE001 - after_failure re-raises what it cannot retry
                delay = op.after_failure(step, exc)
                self._refresh_topology()
                time.sleep(delay)
                step = step.resent()
                continue
            op.succeeded(step, reply)
            return reply

    def _refresh_topology(self) -> None:
        manager = getattr(self.client, "nodes_manager", None) if self.cluster else None
        if manager is not None:
            try:
                manager.initialize()
            except (rex.RedisError, OSError):
                pass  # the node is still down: the retry reports it if it stays so

    def _send_concerned(self, op: _Operation, step: Run) -> Any:
        client = self.client
        if self.cluster:  # the node's own client: the script and WAIT share one connection
            client = client.get_node_from_key(step.keys[0]).redis_connection
        pipe = client.pipeline(transaction=False)
        self._script(step.script)(keys=step.keys, args=step.args, client=pipe)
        for call in _concern_calls(op.concern):
            pipe.execute_command(*call)
        replies = pipe.execute(raise_on_error=False)
        if isinstance(replies[0], Exception):
            raise replies[0]
        op.check_concern(replies[1:])
        return replies[0]

    def _execute(self, step: Step) -> Any:
        if isinstance(step, Run):  # EVALSHA as is; redis-py's Script loads it on NOSCRIPT
            script = self._script(step.script)
            try:
                return self.client.execute_command(
                    "EVALSHA", script.sha, len(step.keys), *step.keys, *step.args
                )
            except rex.NoScriptError:
                return script(keys=step.keys, args=step.args)
        if isinstance(step, Call):
            return self.client.execute_command(*step.args, **_routing(self.client, step))
        pipe = self.client.pipeline(transaction=False)
        for inner in step.steps:
            if isinstance(inner, Call):
                pipe.execute_command(*inner.args)
            else:
                self._script(inner.script)(keys=inner.keys, args=inner.args, client=pipe)
        return pipe.execute()


class AsyncDriver(_Driver):
    """Runs the same plans on a ``redis.asyncio.Redis`` or ``RedisCluster``.

    With ``coalesce=True`` (the default on a standalone server), single steps that
    concurrent tasks await in the same event-loop tick go out together as one
    non-transactional pipeline: each script is still atomic on its own, but 64
    concurrent appends cost one round trip instead of 64. A lone step is sent as is.
    Steps under a write concern are sent on their own (with their WAIT/WAITAOF).
    """

    def __init__(
        self,
        client: Any,
        *,
        coalesce: bool = True,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        concern: WriteConcern | None = None,
        cluster: bool = False,
        metrics_hook: monitoring.MetricsHook | None = None,
    ) -> None:
        super().__init__(
            client, retry=retry, concern=concern, cluster=cluster, metrics_hook=metrics_hook
        )
        if cluster and self.concern.active:
            raise ConfigurationError(
                "wait_replicas / durability='fsync' are not supported on an asyncio "
                "RedisCluster client (use the blocking ConversationStore on a cluster)"
            )
        self._coalesce = coalesce
        self._pending: list[tuple[Call | Run, asyncio.Future[Any]]] = []
        self._flushing: set[asyncio.Task[None]] = set()

    async def run(self, plan: Plan[T], *, wait_replicas: int | None = None) -> T:
        op = self._operation(plan, wait_replicas)
        if self.cluster and op.concern.active:
            raise ConfigurationError("wait_replicas is not supported on an asyncio RedisCluster")
        with _Translated(op, plan):
            try:
                step = next(plan)
                while True:
                    step = plan.send(await self._attempt(op, step))
            except StopIteration as stop:
                result: T = stop.value
        return op.finish(result)

    async def _attempt(self, op: _Operation, step: Step) -> Any:
        while True:
            try:
                if op.concerned and isinstance(step, Run) and step.writes:
                    reply = await self._send_concerned(op, step)
                else:
                    reply = await self._execute(step)
            except Exception as exc:  # noqa: BLE001 - after_failure re-raises what it cannot retry
                await asyncio.sleep(op.after_failure(step, exc))
                step = step.resent()
                continue
            op.succeeded(step, reply)
            return reply

    async def _send_concerned(self, op: _Operation, step: Run) -> Any:
        pipe = self.client.pipeline(transaction=False)
        await self._script(step.script)(keys=step.keys, args=step.args, client=pipe)
        for call in _concern_calls(op.concern):
            pipe.execute_command(*call)
        replies = await pipe.execute(raise_on_error=False)
        if isinstance(replies[0], Exception):
            raise replies[0]
        op.check_concern(replies[1:])
        return replies[0]

    async def _execute(self, step: Step) -> Any:
        if self._coalesce and not isinstance(step, Batch):
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Any] = loop.create_future()
            if not self._pending:
                loop.call_soon(self._flush)
            self._pending.append((step, future))
            return await future
        return await self._send(step)

    async def _send(self, step: Step) -> Any:
        if isinstance(step, Run):  # EVALSHA as is; redis-py's Script loads it on NOSCRIPT
            script = self._script(step.script)
            try:
                return await self.client.execute_command(
                    "EVALSHA", script.sha, len(step.keys), *step.keys, *step.args
                )
            except rex.NoScriptError:
                return await script(keys=step.keys, args=step.args)
        if isinstance(step, Call):
            return await self.client.execute_command(*step.args, **_routing(self.client, step))
        pipe = self.client.pipeline(transaction=False)
        for inner in step.steps:
            if isinstance(inner, Call):
                pipe.execute_command(*inner.args)
            else:
                await self._script(inner.script)(keys=inner.keys, args=inner.args, client=pipe)
        return await pipe.execute()

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send_batch(batch))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _send_batch(self, batch: list[tuple[Call | Run, asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                replies: list[Any] = [await self._send(batch[0][0])]
            else:
                pipe = self.client.pipeline(transaction=False)
                for step, _ in batch:
                    if isinstance(step, Call):
                        pipe.execute_command(*step.args)
                    else:  # plain EVALSHA: a NOSCRIPT reply is retried below, with loading
                        sha = self._script(step.script).sha
                        pipe.execute_command("EVALSHA", sha, len(step.keys), *step.keys, *step.args)
                replies = await pipe.execute(raise_on_error=False)
                for index, ((step, _), reply) in enumerate(zip(batch, replies, strict=True)):
                    if isinstance(reply, rex.NoScriptError):
                        replies[index] = await self._send(step)
        except BaseException as exc:  # every waiter must hear about it, then it propagates
            for _, future in batch:  # each waiter's own run() decides whether its step is retried
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)
