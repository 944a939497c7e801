"""The two thin drivers that run plans: one blocking, one asyncio.

Everything an operation means lives in ``convstore.plans``; here is "send this step,
hand back the reply", the store's retry policy (only steps that declare themselves
safe to repeat are re-sent, see ``plans.steps``), the write concern (WAIT / WAITAOF
on the write's own connection, in the same pipeline), and the translation of
redis-py's failures (``convstore.failures``); each run's bookkeeping (attempts, the
shortfall of a write concern, metrics and logs) is a ``convstore.operation.Operation``.
The async driver also coalesces the
single steps of concurrent tasks into shared round trips, the appends among them as one
grouped script call (``plans.grouping``); a failed round trip is retried by each task for
its own step only, so another task's unsafe step is never re-sent.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeVar

import redis.exceptions as rex

from convstore import monitoring
from convstore.connections import inspect_client, raw_reply_client
from convstore.errors import ConfigurationError
from convstore.lua import Script
from convstore.operation import Operation
from convstore.plans import Batch, Call, Plan, Run, Step
from convstore.plans.grouping import halves, plan_sends, replies_of
from convstore.policies import DEFAULT_RETRY, RetryPolicy, WriteConcern

__all__ = ["AsyncDriver", "SyncDriver"]

T = TypeVar("T")

#: A batch of at least this many steps that finds nothing in flight goes out as two
#: halves (see ``AsyncDriver._flush``).
SPLIT_AT = 16


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
        self._raw: Any = None  # see _raw_client

    def _raw_client(self) -> Any:
        """Where a ``raw_reply`` call goes: a client without redis-py's row parsing, or the
        user's client where there is none (the plan takes either reply). Built on first
        use: a store that never reads history does not pay for it (about 50 µs)."""
        if self._raw is None:
            self._raw = raw_reply_client(self.client) or self.client
        return self._raw

    def _pipeline(self, batch: Batch) -> Any:
        """A pipeline for ``batch``: on the raw-reply client when every call in it takes a
        raw reply (``Call.raw_reply``; scripts have no reply parsing either way)."""
        calls = [step for step in batch.steps if isinstance(step, Call)]
        raw = bool(calls) and all(call.raw_reply for call in calls)
        return (self._raw_client() if raw else self.client).pipeline(transaction=False)

    def _operation(self, plan: Plan[Any], wait_replicas: int | None) -> Operation:
        concern = self.concern.with_replicas(wait_replicas)
        return Operation(plan, self.retry, concern, self.metrics_hook)


class SyncDriver(_Driver):
    """Runs plans on a ``redis.Redis`` or ``redis.cluster.RedisCluster``."""

    def run(self, plan: Plan[T], *, wait_replicas: int | None = None) -> T:
        op = self._operation(plan, wait_replicas)
        with op:
            try:
                step = next(plan)
                while True:
                    step = plan.send(self._attempt(op, step))
            except StopIteration as stop:
                result: T = stop.value
        return op.finish(result)

    def _attempt(self, op: Operation, step: Step) -> Any:
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

    def _send_concerned(self, op: Operation, step: Run) -> Any:
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
            client = self._raw_client() if step.raw_reply else self.client
            return client.execute_command(*step.args, **_routing(client, step))
        pipe = self._pipeline(step)
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
    concurrent appends cost one round trip instead of 64. With ``group=True`` (the
    default; never on a cluster) the appends of such a pipeline go as one grouped script
    call (``plans.grouping``): one command to pack and one reply to read instead of 64,
    each session's run still atomic and answering for itself. A lone step is sent as is.
    Steps under a write concern are sent on their own (with their WAIT/WAITAOF).
    """

    def __init__(
        self,
        client: Any,
        *,
        coalesce: bool = True,
        group: bool = True,
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
        self._group = group and not cluster
        self._pending: list[tuple[Call | Run, asyncio.Future[Any]]] = []
        self._flushing: set[asyncio.Task[None]] = set()

    async def run(self, plan: Plan[T], *, wait_replicas: int | None = None) -> T:
        op = self._operation(plan, wait_replicas)
        if self.cluster and op.concern.active:
            raise ConfigurationError("wait_replicas is not supported on an asyncio RedisCluster")
        with op:
            try:
                step = next(plan)
                while True:
                    step = plan.send(await self._attempt(op, step))
            except StopIteration as stop:
                result: T = stop.value
        return op.finish(result)

    async def _attempt(self, op: Operation, step: Step) -> Any:
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

    async def _send_concerned(self, op: Operation, step: Run) -> Any:
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
            client = self._raw_client() if step.raw_reply else self.client
            return await client.execute_command(*step.args, **_routing(client, step))
        pipe = self._pipeline(step)
        for inner in step.steps:
            if isinstance(inner, Call):
                pipe.execute_command(*inner.args)
            else:
                await self._script(inner.script)(keys=inner.keys, args=inner.args, client=pipe)
        return await pipe.execute()

    def _flush(self) -> None:
        """Send what the tasks of this tick are waiting for. A large batch that finds the
        server idle goes out as two halves (``plans.grouping.halves``: one session's steps
        stay together, in order), on two connections: from then on the tasks form two
        cohorts, and the client prepares one cohort's next steps while the server runs the
        other's (the client, not Redis, is the slower side of an async append)."""
        batch, self._pending = self._pending, []
        parts = [batch]
        if not self._flushing and len(batch) >= SPLIT_AT:
            parts = [[batch[i] for i in half] for half in halves([s for s, _ in batch]) if half]
        for part in parts:
            task = asyncio.ensure_future(self._send_batch(part))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def _send_batch(self, batch: list[tuple[Call | Run, asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                replies: list[Any] = [await self._send(batch[0][0])]
            else:
                replies = await self._send_grouped([step for step, _ in batch])
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

    async def _send_grouped(self, steps: list[Call | Run]) -> list[Any]:
        """One pipeline for ``steps``, the groupable runs of several sessions folded into
        one grouped call each (``plans.grouping``); each step's own reply, in order."""
        sends = plan_sends(steps) if self._group else [(step, (i,)) for i, step in enumerate(steps)]
        pipe = self.client.pipeline(transaction=False)
        for step, _ in sends:
            if isinstance(step, Call):
                pipe.execute_command(*step.args)
            else:  # plain EVALSHA: a NOSCRIPT reply is retried below, with loading
                sha = self._script(step.script).sha
                pipe.execute_command("EVALSHA", sha, len(step.keys), *step.keys, *step.args)
        replies: list[Any] = [None] * len(steps)
        for send, reply in zip(sends, await pipe.execute(raise_on_error=False), strict=True):
            if isinstance(reply, rex.NoScriptError):
                reply = await self._send(send[0])
            for index, own in zip(send[1], replies_of(send, reply), strict=True):
                replies[index] = own
        return replies
