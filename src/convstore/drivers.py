"""The two thin drivers that run plans: one blocking, one asyncio.

Everything an operation means lives in ``plans.py``; here is just "send this
step, hand back the reply", plus the translation of redis-py's failures into
:class:`StoreUnavailable` / :class:`StoreError`. The async driver also
coalesces the steps of concurrent tasks into shared round trips.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis.exceptions as rex

from convstore import monitoring
from convstore.connections import inspect_client
from convstore.errors import StoreError, StoreUnavailable
from convstore.lua import Script
from convstore.plans import Batch, Call, Plan, Run, Step

__all__ = ["AsyncDriver", "SyncDriver"]

T = TypeVar("T")

_UNAVAILABLE = (rex.ConnectionError, rex.TimeoutError, rex.ClusterDownError, OSError)


@contextmanager
def _translated(plan: Plan[Any]) -> Iterator[None]:
    """Map redis-py failures to convstore errors and report the operation to monitoring."""
    name = getattr(getattr(plan, "gi_code", None), "co_name", "operation")
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"Redis is unavailable during {name}: {exc}") from exc
    except rex.ResponseError as exc:
        raise StoreError(f"Redis refused a command during {name}: {exc}") from exc
    finally:
        plan.close()
        if monitoring.get_metrics_hook() is not None:
            monitoring.emit(
                "store.operation",
                time.perf_counter() - started,
                {"operation": name, "outcome": outcome},
            )


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


class SyncDriver:
    """Runs plans on a ``redis.Redis`` or ``redis.cluster.RedisCluster``."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._script = _ScriptCache(client)

    def run(self, plan: Plan[T]) -> T:
        with _translated(plan):
            try:
                step = next(plan)
                while True:
                    step = plan.send(self._execute(step))
            except StopIteration as stop:
                result: T = stop.value
                return result

    def _execute(self, step: Step) -> Any:
        if isinstance(step, Call):
            return self.client.execute_command(*step.args, **_routing(self.client, step))
        if isinstance(step, Run):
            return self._script(step.script)(keys=step.keys, args=step.args)
        pipe = self.client.pipeline(transaction=False)
        for inner in step.steps:
            if isinstance(inner, Call):
                pipe.execute_command(*inner.args)
            else:
                self._script(inner.script)(keys=inner.keys, args=inner.args, client=pipe)
        return pipe.execute()


class AsyncDriver:
    """Runs the same plans on a ``redis.asyncio.Redis`` or ``RedisCluster``.

    With ``coalesce=True`` (the default on a standalone server), single steps that
    concurrent tasks await in the same event-loop tick go out together as one
    non-transactional pipeline: each script is still atomic on its own, but 64
    concurrent appends cost one round trip instead of 64. A lone step is sent as is.
    """

    def __init__(self, client: Any, *, coalesce: bool = True) -> None:
        self.client = client
        self._script = _ScriptCache(client)
        self._coalesce = coalesce
        self._pending: list[tuple[Call | Run, asyncio.Future[Any]]] = []
        self._flushing: set[asyncio.Task[None]] = set()

    async def run(self, plan: Plan[T]) -> T:
        with _translated(plan):
            try:
                step = next(plan)
                while True:
                    step = plan.send(await self._execute(step))
            except StopIteration as stop:
                result: T = stop.value
                return result

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
        if isinstance(step, Call):
            return await self.client.execute_command(*step.args, **_routing(self.client, step))
        if isinstance(step, Run):
            return await self._script(step.script)(keys=step.keys, args=step.args)
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
            for _, future in batch:
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
