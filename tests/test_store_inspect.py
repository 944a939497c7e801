"""``messages.entries`` and ``sessions.retention``: the reads the web inspector needs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conftest import SessionFactory, StoreFactory, aw
from convstore import Entry, Retention, SessionNotFound, SessionRetention, ValidationError


async def test_entries_after_and_before(
    factory: StoreFactory, make_session: SessionFactory
) -> None:
    store = factory()
    key = await aw(store.sessions.create(make_session()))
    await aw(
        store.messages.append_many(key, [{"role": "user", "content": str(i)} for i in range(5)])
    )
    newest = await aw(store.messages.entries(key, limit=2))
    assert [e.message["content"] for e in newest] == ["3", "4"]
    assert all(isinstance(e, Entry) for e in newest)
    first = await aw(store.messages.entries(key, after="0-0", limit=2))
    assert [e.message["content"] for e in first] == ["0", "1"]
    rest = await aw(store.messages.entries(key, after=first[-1].entry_id, limit=10))
    assert [e.message["content"] for e in rest] == ["2", "3", "4"]
    older = await aw(store.messages.entries(key, before=newest[0].entry_id, limit=10))
    assert [e.message["content"] for e in older] == ["0", "1", "2"]
    assert [e.message for e in first + rest] == await aw(store.messages.history(key))
    assert await aw(store.messages.entries(key, after=newest[-1].entry_id)) == []


async def test_entries_refuses_bad_input_and_missing_sessions(
    factory: StoreFactory, make_session: SessionFactory
) -> None:
    store = factory()
    key = await aw(store.sessions.create(make_session()))
    for kwargs in ({"after": "x"}, {"before": "1-2-3"}, {"after": f"{2**64}-0"}, {"limit": 0}):
        with pytest.raises(ValidationError):
            await aw(store.messages.entries(key, **kwargs))
    with pytest.raises(ValidationError):
        await aw(store.messages.entries(key, after="0-0", before="9-0"))
    assert await aw(store.messages.entries(key)) == []  # stored, but no messages yet
    with pytest.raises(SessionNotFound):
        await aw(store.messages.entries("nobody"))


async def test_retention_shows_defaults_overrides_and_ttl(
    factory: StoreFactory, make_session: SessionFactory
) -> None:
    store = factory(max_messages=50, ttl=timedelta(hours=1))
    key = await aw(store.sessions.create(make_session()))
    found = await aw(store.sessions.retention(key))
    assert isinstance(found, SessionRetention)
    assert found.retention == Retention(max_messages=50, ttl=timedelta(hours=1))
    assert found.overridden == () and 3590 < found.ttl_remaining <= 3600
    await aw(store.sessions.set_retention(key, Retention(max_messages=7, max_age=30)))
    found = await aw(store.sessions.retention(key))
    assert found.retention == Retention(max_messages=7, max_age=30.0, ttl=None)
    assert found.overridden == ("max_messages", "max_age", "ttl") and found.ttl_remaining is None
    with pytest.raises(SessionNotFound):
        await aw(store.sessions.retention("nobody"))
