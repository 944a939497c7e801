"""aiecs's ContextEngine (2.2.0, from its published wheel) as a peer of the goal table.

Loaded with benchmarks/aiecs_wheel.py (the tests' loader). Its API is async only: the
one-append and read rows run one coroutine per round on a private event loop, awaiting each
call in turn; the async row is 64 tasks over one engine (one ``redis.asyncio`` client), the
same as convstore's. Each append is its ``add_conversation_message``: ``LPUSH`` of JSON,
``LTRIM``, ``EXPIRE``, then ``update_session`` (``HGET`` + ``HSET`` of the session record).
Its ``conversation_limit`` (1,000 by default, trimming the list) is raised above every N so
reads and bytes compare the same histories. It connects through ``REDIS_HOST``/``PORT``/``DB``
and writes global keys (``sessions``, ``conversation:<id>``), so it only runs on the goal
table's private server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from benchmarks.aiecs_wheel import AIECS_VERSION, CORE_MODULES, ReferenceUnavailable, load
from benchmarks.common import AIECS, Msg
from benchmarks.goal_peers import GoalPeer

LIMIT = 10_000_000


def aiecs_availability() -> str:
    """ "installed ..." when the wheel's ContextEngine loads here, else why not."""
    try:
        with load(CORE_MODULES):
            pass
    except (ReferenceUnavailable, OSError) as exc:
        return f"not available ({exc})"[:300]
    return f"installed {AIECS_VERSION} (published wheel, loaded by benchmarks/aiecs_wheel.py)"


@contextlib.contextmanager
def _redis_env(url: str) -> Iterator[None]:
    parts = urlsplit(url)
    values = {
        "REDIS_HOST": parts.hostname or "127.0.0.1",
        "REDIS_PORT": str(parts.port or 6379),
        "REDIS_DB": (parts.path or "/0").lstrip("/") or "0",
    }
    saved = {k: os.environ.get(k) for k in [*values, "REDIS_PASSWORD"]}
    os.environ.update(values)
    os.environ.pop("REDIS_PASSWORD", None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class AiecsGoalPeer(GoalPeer):
    name = AIECS
    async_how = "native async add_conversation_message, 64 tasks over one ContextEngine"

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(url, prefix)
        self._stack = contextlib.ExitStack()
        # it logs every error it swallows (e.g. "Too many connections" past its 20-connection
        # pool under 64 tasks); the async round counts what reached Redis instead
        quiet = logging.getLogger("aiecs")
        self._stack.callback(quiet.setLevel, quiet.level)
        quiet.setLevel(logging.CRITICAL)
        reference = self._stack.enter_context(load(CORE_MODULES))
        self._module = reference.context_engine
        self._runner = asyncio.Runner()
        self.engine = self._runner.run(self._engine())
        self._aengine: Any = None

    async def _engine(self) -> Any:
        with _redis_env(self.url):
            engine = self._module.ContextEngine()
            if not await engine.initialize() or engine.redis_client is None:
                raise ReferenceUnavailable("aiecs ContextEngine did not reach the goal server")
        engine.conversation_limit = LIMIT
        return engine

    def _sid(self, session: str) -> str:
        return f"{self.prefix}-ce-{session}"

    def key(self, session: str) -> str:
        return f"conversation:{self._sid(session)}"

    async def _create(self, engine: Any, session: str) -> str:
        sid = self._sid(session)
        await engine.create_session(sid, "user_1", {"bench": True})
        return sid

    def prepare(self, session: str) -> None:
        self._runner.run(self._create(self.engine, session))

    def append_round(self, session: str, msgs: list[Msg]) -> None:
        async def go() -> None:
            add, sid = self.engine.add_conversation_message, self._sid(session)
            for m in msgs:
                await add(sid, m.role, m.content, m.metadata)

        self._runner.run(go())

    def build(self, session: str, msgs: list[Msg]) -> None:
        now = datetime.now(UTC).replace(tzinfo=None)
        values = [
            json.dumps({"role": m.role, "content": m.content, "timestamp": now.isoformat(),
                        "metadata": m.metadata})
            for m in msgs
        ]  # fmt: skip
        for start in range(0, len(values), 1000):
            self.client.execute_command("LPUSH", self.key(session), *values[start : start + 1000])

    def read_all(self, session: str) -> list[Any]:
        get = self.engine.get_conversation_history
        return list(self._runner.run(get(self._sid(session), limit=LIMIT)))

    def newest(self, session: str, n: int) -> list[Any]:
        # its limit reads LRANGE -n -1, i.e. the *oldest* n (it LPUSHes): the newest 20 need
        # everything read, like the other peers
        return self.read_all(session)[-n:]

    async def aopen(self) -> None:
        self._aengine = await self._engine()

    async def aprepare(self, sessions: list[str]) -> None:
        for s in sessions:
            await self._create(self._aengine, s)

    async def aappend_all(self, sessions: list[str], msgs: list[Msg]) -> None:
        add = self._aengine.add_conversation_message

        async def one(sid: str) -> None:
            for m in msgs:
                await add(sid, m.role, m.content, m.metadata)

        await asyncio.gather(*(one(self._sid(s)) for s in sessions))

    async def aclose(self) -> None:
        await self._aengine.close()

    def close(self) -> None:
        try:
            self._runner.run(self.engine.close())
        finally:
            self._runner.close()
            self._stack.close()
            super().close()
