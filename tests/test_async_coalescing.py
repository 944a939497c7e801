"""The async driver sends steps awaited in the same event-loop tick as one pipeline."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest

from conftest import SessionFactory
from convstore import AsyncConversationStore, SessionNotFound, ValidationError


async def test_concurrent_appends_share_round_trips_and_lose_nothing(
    astore: AsyncConversationStore, make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [await astore.sessions.save(make_session(f"c{i}")) for i in range(16)]
    pipelines: list[int] = []
    original = astore.client.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = original(*args, **kwargs)
        execute = pipe.execute

        async def execute_and_count(*a: Any, **kw: Any) -> Any:
            pipelines.append(len(pipe.command_stack))
            return await execute(*a, **kw)

        pipe.execute = execute_and_count
        return pipe

    monkeypatch.setattr(astore.client, "pipeline", counting_pipeline)

    async def writer(key: str) -> None:
        for n in range(20):
            await astore.messages.append(key, {"role": "user", "content": f"{key}-{n}"})

    await asyncio.gather(*(writer(k) for k in keys))
    for key in keys:
        assert [m["content"] for m in await astore.messages.history(key)] == [
            f"{key}-{n}" for n in range(20)
        ]
    assert pipelines and max(pipelines) >= 8  # many appends went out together
    assert sum(pipelines) <= 16 * 20


async def test_one_failing_step_does_not_fail_its_batch(
    astore: AsyncConversationStore, make_session: SessionFactory
) -> None:
    key = await astore.sessions.save(make_session("ok"))
    results = await asyncio.gather(
        *(astore.messages.append(key, {"role": "user", "content": str(n)}) for n in range(5)),
        astore.messages.append("missing", {"role": "user", "content": "x"}),
        astore.messages.append(key, {"role": "user", "content": "bad", "extra": 1}),
        return_exceptions=True,
    )
    assert isinstance(results[5], SessionNotFound)
    assert isinstance(results[6], ValidationError)
    assert all(r.created for r in results[:5])  # type: ignore[union-attr]
    assert await astore.messages.count(key) == 5


async def test_a_flushed_script_cache_is_reloaded_inside_a_batch(
    make_session: SessionFactory,
) -> None:
    server = fakeredis.FakeServer()
    store = AsyncConversationStore.embedded(server=server)
    key = await store.sessions.save(make_session("reload"))
    await store.messages.append(key, {"role": "user", "content": "first"})
    await store.client.script_flush()
    await asyncio.gather(
        *(store.messages.append(key, {"role": "user", "content": str(n)}) for n in range(4))
    )
    assert await store.messages.count(key) == 5
    await store.aclose()
