"""One meaning of ``limit`` across the native API: a positive int, or None for all; 0 refused."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import SessionFactory, Store, StoreFactory, aw
from convstore import ValidationError
from convstore.validation import limit_or_all


@pytest.fixture
def st(factory: StoreFactory) -> Store:
    return factory()


def test_the_rule() -> None:
    assert limit_or_all(None) is None
    assert limit_or_all(3) == 3
    for bad in (0, -1, True, 1.5, "3"):
        with pytest.raises(ValidationError) as caught:
            limit_or_all(bad)
        assert caught.value.field == "limit"
    with pytest.raises(ValidationError, match="use None for all"):
        limit_or_all(0)


def _calls(st: Store, key: str, limit: Any) -> list[Any]:
    return [
        lambda: st.messages.history(key, limit),
        lambda: st.messages.page(key, limit=limit),
        lambda: st.messages.agent_messages(key, limit=limit),
        lambda: st.sessions.list(limit=limit),
    ]


async def test_zero_is_refused_everywhere_with_the_same_message(
    st: Store, make_session: SessionFactory
) -> None:
    key = await aw(st.sessions.save(make_session("s")))
    for call in _calls(st, key, 0):
        with pytest.raises(ValidationError, match=r"use None for all") as caught:
            await aw(call())
        assert caught.value.field == "limit"


async def test_none_means_all_everywhere(st: Store, make_session: SessionFactory) -> None:
    keys = [await aw(st.sessions.save(make_session(f"s{i}"))) for i in range(3)]
    key = keys[0]
    await aw(st.messages.append_many(key, [{"role": "user", "content": str(i)} for i in range(7)]))
    assert len(await aw(st.messages.history(key, None))) == 7
    whole = await aw(st.messages.page(key, limit=None))
    assert [m["content"] for m in whole.items] == [str(i) for i in range(7)]
    assert whole.cursor is None
    assert await aw(st.messages.agent_messages(key, limit=None)) == []
    listed = await aw(st.sessions.list(limit=None))
    assert sorted(s.session_id for s in listed.items) == ["s0", "s1", "s2"]
    assert listed.cursor is None
    two = await aw(st.messages.page(key, limit=2))
    assert [m["content"] for m in two.items] == ["5", "6"] and two.cursor is not None
