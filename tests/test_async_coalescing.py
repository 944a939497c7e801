"""The async driver sends steps awaited in the same event-loop tick as one pipeline."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest

from conftest import SessionFactory
from convstore import (
    AsyncConversationStore,
    CodecError,
    SessionNotFound,
    StaleAppend,
    StoreError,
    ValidationError,
    drivers,
)


async def test_concurrent_appends_share_round_trips_and_lose_nothing(
    astore: AsyncConversationStore, make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [await astore.sessions.save(make_session(f"c{i}")) for i in range(16)]
    batches: list[tuple[int, int]] = []  # (steps awaited together, commands sent for them)
    original = drivers.plan_sends

    def recording(steps: Any) -> Any:
        sends = original(steps)
        batches.append((len(steps), len(sends)))
        return sends

    monkeypatch.setattr(drivers, "plan_sends", recording)

    async def writer(key: str) -> None:
        for n in range(20):
            await astore.messages.append(key, {"role": "user", "content": f"{key}-{n}"})

    await asyncio.gather(*(writer(k) for k in keys))
    for key in keys:
        assert [m["content"] for m in await astore.messages.history(key)] == [
            f"{key}-{n}" for n in range(20)
        ]
    assert batches and max(steps for steps, _ in batches) >= 8  # many appends went out together
    assert all(sends == 1 for _, sends in batches)  # each batch of appends: one grouped call
    assert sum(steps for steps, _ in batches) <= 16 * 20


async def test_a_grouped_call_answers_each_session_as_its_own_call_would(
    astore: AsyncConversationStore,
    async_client: Any,
    make_session: SessionFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = [await astore.sessions.save(make_session(f"g{i}")) for i in range(3)]
    damaged = await astore.sessions.save(make_session("damaged"))
    await async_client.hset(astore.config.keyspace.session(damaged).session, "n", b"abc")
    wrong = await astore.sessions.save(make_session("wrongtype"))
    stream = astore.config.keyspace.session(wrong).messages
    await async_client.set(stream, b"not a stream")  # XADD fails inside the script
    stale = await astore.sessions.save(make_session("stale"))
    await astore.messages.append(stale, {"role": "user", "content": "first"})

    def calls() -> list[Any]:
        return [
            *(astore.messages.append(k, {"role": "user", "content": "kept"}) for k in good),
            astore.messages.append("missing", {"role": "user", "content": "x"}),
            astore.messages.append(damaged, {"role": "user", "content": "x"}),
            astore.messages.append(wrong, {"role": "user", "content": "x"}),
            astore.messages.append(stale, {"role": "user", "content": "x"}, expect_last="0-0"),
        ]

    alone = []  # each call in its own event-loop tick: a plain EVALSHA of its own
    for call in calls():
        try:
            alone.append(await call)
        except Exception as exc:  # noqa: BLE001 - the outcome is what is compared
            alone.append(exc)
    sends: list[tuple[int, int]] = []
    original = drivers.plan_sends
    monkeypatch.setattr(
        drivers, "plan_sends", lambda steps: sends.append((len(steps), 0)) or original(steps)
    )
    together = await asyncio.gather(*calls(), return_exceptions=True)
    assert sends == [(7, 0)]  # all seven went out in one batch, as one grouped call
    for one, grouped in zip(alone, together, strict=True):
        assert type(one) is type(grouped)
    assert all(r.created for r in together[:3])  # type: ignore[union-attr]
    assert isinstance(together[3], SessionNotFound)
    assert isinstance(together[4], CodecError) and "stored field 'n'" in str(together[4])
    assert isinstance(together[5], StoreError) and "WRONGTYPE" in str(together[5])
    assert isinstance(together[6], StaleAppend)
    for key in good:
        assert [m["content"] for m in await astore.messages.history(key)] == ["kept", "kept"]
    assert [m["content"] for m in await astore.messages.history(stale)] == ["first"]
    assert await async_client.get(stream) == b"not a stream"


async def test_a_large_batch_on_an_idle_connection_goes_out_in_two_halves(
    astore: AsyncConversationStore, make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [await astore.sessions.save(make_session(f"h{i}")) for i in range(drivers.SPLIT_AT * 2)]
    sizes: list[int] = []
    original = drivers.AsyncDriver._send_batch

    async def recording(self: Any, batch: Any) -> None:
        sizes.append(len(batch))
        await original(self, batch)

    monkeypatch.setattr(drivers.AsyncDriver, "_send_batch", recording)

    async def writer(key: str) -> None:
        for n in range(5):
            await astore.messages.append(key, {"role": "user", "content": str(n)})

    await asyncio.gather(*(writer(k) for k in keys))
    assert len(sizes) >= 2 and sizes[0] + sizes[1] == len(keys)  # two cohorts from the start
    assert sum(sizes) == len(keys) * 5
    for key in keys:
        assert [m["content"] for m in await astore.messages.history(key)] == list("01234")


async def test_a_split_batch_keeps_each_sessions_appends_in_order(
    astore: AsyncConversationStore, make_session: SessionFactory
) -> None:
    keys = [await astore.sessions.save(make_session(f"o{i}")) for i in range(3)]
    for _ in range(5):  # each time, one batch of 60 that finds the driver idle: split in two
        await asyncio.gather(
            *(
                astore.messages.append(key, {"role": "user", "content": str(n)})
                for n in range(20)
                for key in keys
            )
        )
    for key in keys:
        assert [m["content"] for m in await astore.messages.history(key)] == [
            str(n) for _ in range(5) for n in range(20)
        ]


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
