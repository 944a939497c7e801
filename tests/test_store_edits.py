"""store.messages.pop / truncate_after / fork on every backend, sync and async."""

from __future__ import annotations

import asyncio
import threading

import pytest
import redis

from conftest import SessionFactory, Store, StoreFactory, aw
from convstore import AsyncConversationStore, lua
from convstore.errors import MessageNotFound, SessionNotFound
from convstore.plans import Plan, Run, edits


@pytest.fixture
def st(factory: StoreFactory) -> Store:
    return factory()


def _msgs(n: int, prefix: str = "m") -> list[dict[str, object]]:
    return [
        {"role": "user", "content": f"{prefix}{i}", "metadata": {"message_id": f"{prefix}{i}"}}
        for i in range(n)
    ]


async def _contents(st: Store, key: str) -> list[str]:
    return [m["content"] for m in await aw(st.messages.history(key))]


async def test_pop_returns_the_newest_and_removes_it_with_its_id(
    st: Store, make_session: SessionFactory, sync_client: redis.Redis
) -> None:
    key = await aw(st.sessions.create(make_session("p")))
    await aw(st.messages.append_many(key, _msgs(3)))
    popped = await aw(st.messages.pop(key))
    assert popped["content"] == "m2" and popped["metadata"]["message_id"] == "m2"
    assert await _contents(st, key) == ["m0", "m1"]
    assert await aw(st.messages.count(key)) == 2
    ids = st.config.keyspace.session(key).ids
    assert sync_client.hlen(ids) == 2  # the idempotency entry went with it
    again = await aw(st.messages.append(key, _msgs(3)[2]))
    assert again.created  # so the same id can be appended again
    assert await _contents(st, key) == ["m0", "m1", "m2"]
    for _ in range(3):
        assert await aw(st.messages.pop(key)) is not None
    assert await aw(st.messages.pop(key)) is None
    with pytest.raises(SessionNotFound):
        await aw(st.messages.pop("nope"))


async def test_ten_concurrent_pops_return_ten_distinct_messages(
    st: Store, make_session: SessionFactory
) -> None:
    key = await aw(st.sessions.create(make_session("c")))
    await aw(st.messages.append_many(key, _msgs(12)))
    if isinstance(st, AsyncConversationStore):
        got = await asyncio.gather(*(st.messages.pop(key) for _ in range(10)))
    else:
        got = []
        lock = threading.Lock()

        def worker() -> None:
            m = st.messages.pop(key)
            with lock:
                got.append(m)

        threads = [threading.Thread(target=worker) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(m["content"] for m in got) == sorted(f"m{i}" for i in range(2, 12))
    assert await _contents(st, key) == ["m0", "m1"]


async def test_truncate_after_by_message_id_and_by_entry_id(
    st: Store, make_session: SessionFactory, sync_client: redis.Redis
) -> None:
    key = await aw(st.sessions.create(make_session("t")))
    results = await aw(st.messages.append_many(key, _msgs(6)))
    assert await aw(st.messages.truncate_after(key, "m3")) == 2
    assert await _contents(st, key) == ["m0", "m1", "m2", "m3"]
    assert await aw(st.messages.truncate_after(key, results[1].entry_id)) == 2
    assert await _contents(st, key) == ["m0", "m1"]
    assert await aw(st.messages.count(key)) == 2
    assert sync_client.hlen(st.config.keyspace.session(key).ids) == 2
    assert await aw(st.messages.truncate_after(key, "m1")) == 0
    with pytest.raises(MessageNotFound):
        await aw(st.messages.truncate_after(key, "m4"))  # removed: no longer a point
    with pytest.raises(MessageNotFound):
        await aw(st.messages.truncate_after(key, "1-1"))
    with pytest.raises(SessionNotFound):
        await aw(st.messages.truncate_after("nope", "m1"))
    new = await aw(st.messages.append(key, {"role": "user", "content": "after"}))
    assert new.entry_id > results[5].entry_id  # ids never go back


async def test_fork_copies_up_to_a_point_with_the_original_ids(
    st: Store, make_session: SessionFactory
) -> None:
    key = await aw(st.sessions.create(make_session("src")))
    await aw(st.messages.append_many(key, _msgs(5)))
    whole = await aw(st.messages.fork(key, make_session("copy_all")))
    assert await _contents(st, whole) == [f"m{i}" for i in range(5)]
    part = await aw(st.messages.fork(key, make_session("copy_part"), upto="m2"))
    copied = await aw(st.messages.history(part))
    source = await aw(st.messages.history(key))
    assert copied == source[:3]  # same ids, timestamps, metadata
    # the copy is independent of the source
    await aw(st.messages.pop(part))
    assert await aw(st.messages.count(key)) == 5
    # running the same fork again (a resumed fork) completes it without duplicates
    assert await aw(st.messages.fork(key, make_session("copy_part"), upto="m2")) == part
    assert await _contents(st, part) == ["m0", "m1", "m2"]
    with pytest.raises(MessageNotFound):
        await aw(st.messages.fork(key, make_session("x"), upto="zz"))
    with pytest.raises(SessionNotFound):
        await aw(st.messages.fork("nope", make_session("y")))
    empty = await aw(st.sessions.create(make_session("empty")))
    assert await _contents(st, await aw(st.messages.fork(empty, make_session("e2")))) == []


async def test_fork_resumes_after_an_interruption(
    st: Store, make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork cut off after its first chunk is completed by the same call, exactly once."""
    monkeypatch.setattr(edits, "FORK_CHUNK", 2)
    key = await aw(st.sessions.create(make_session("src")))
    await aw(st.messages.append_many(key, _msgs(7)))
    target = make_session("dst")

    def interrupted(plan: Plan[str]) -> Plan[None]:
        """Run ``plan`` until it is about to send its second append, then stop."""
        step, appends = next(plan), 0
        while True:
            if isinstance(step, Run) and step.script is lua.APPEND:
                appends += 1
                if appends == 2:
                    return None
            step = plan.send((yield step))

    await aw(st.driver.run(interrupted(edits.fork(st.config, key, target, None))))
    assert await _contents(st, target.generate_session_key()) == ["m0", "m1"]
    new_key = await aw(st.messages.fork(key, target))
    assert await _contents(st, new_key) == [f"m{i}" for i in range(7)]
