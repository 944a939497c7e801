"""The two engines of the differential, side by side: fixtures and small helpers.

``pair`` starts a private redis-server on a free loopback port (tests/servers.py), points the
real aiecs ContextEngine at it through REDIS_HOST/REDIS_PORT/REDIS_DB (it writes global keys
such as ``sessions`` and ``task_contexts``, so it must never see the shared server), and
builds a ContextEngineStore on the same private server under its own namespace. The
reference runs with its working directory in a tmp dir (its TaskContext writes ``./tasks/``).
Test modules import the fixtures from here.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from aiecs_reference import CORE_MODULES, Reference, loaded
from convstore.contextengine import ContextEngineStore
from differential import Diff, Raised, outcome
from servers import ServerProcess, start_server


@dataclass
class FakeLLM:
    """The LLM-client surface aiecs's compression kernel uses: ``await generate_text(messages=,
    max_tokens=)`` returning an object with ``.content``. Never a network call."""

    provider_name: str = "fake"
    calls: list[list[Any]] = field(default_factory=list)

    async def generate_text(self, messages: list[Any], **options: Any) -> Any:
        self.calls.append(list(messages))
        return SimpleNamespace(content=f"summary of {len(messages)} messages")


@dataclass
class Point:
    x: int
    y: int


@dataclass
class Pair:
    """The two engines and this test's comparisons."""

    ref: Any
    ours: Any
    diff: Diff
    aiecs: Reference

    async def both(self, method: str, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        r = await outcome(getattr(self.ref, method)(*args, **kwargs))
        ours_method = getattr(self.ours, method, None)
        if ours_method is None:
            return r, AttributeError(f"ContextEngineStore has no {method}")
        return r, await outcome(ours_method(*args, **kwargs))

    async def compare(self, label: str, method: str, *args: Any, **options: Any) -> tuple[Any, Any]:
        check = {
            k: options.pop(k) for k in ("values", "deliberate", "expect", "adjust") if k in options
        }
        r, o = await self.both(method, *args, **options)
        if isinstance(o, AttributeError):
            o = Raised(o)
        self.diff.check(label, r, o, **check)
        return r, o


@pytest.fixture(name="private_server")
def private_server_fixture(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_server(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="pair")
async def pair_fixture(
    private_server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Pair]:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # the reference's TaskContext writes ./tasks/
    monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("REDIS_PORT", str(private_server.port))
    monkeypatch.setenv("REDIS_DB", "0")
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    with loaded(CORE_MODULES) as aiecs:
        ref = aiecs.context_engine.ContextEngine()
        assert await ref.initialize() is True, "the reference did not reach its private server"
        ours = ContextEngineStore(url=private_server.url, namespace=f"ce-{uuid.uuid4().hex[:10]}")
        try:
            await ours.initialize()
            yield Pair(ref, ours, Diff(), aiecs)
            # Every comparison must have gone through the reference's Redis path.
            assert not ref._memory_sessions and not ref._memory_conversations
            assert not ref._memory_contexts and not ref._memory_checkpoints
        finally:
            await ref.close()
            await ours.close()


def contents(messages: Any) -> list[str]:
    return [m["content"] if isinstance(m, dict) else m.content for m in messages]


async def add_messages(p: Pair, sid: str, n: int, prefix: str = "m") -> list[str]:
    for i in range(n):
        await p.compare(
            f"add_conversation_message #{i}",
            "add_conversation_message",
            sid,
            "user" if i % 2 == 0 else "assistant",
            f"{prefix}{i}",
            {"i": i},
            values=True,
        )
    return [f"{prefix}{i}" for i in range(n)]
