"""Creating vs updating sessions, and SessionNotFound's "did you mean" hint.

Each scenario runs on fakeredis and the real server, through the sync and the async store.
"""

from __future__ import annotations

import pytest

from conftest import SessionFactory, Store, StoreFactory, aw
from convstore import ConcurrentModification, SessionExists, SessionNotFound
from convstore.plans.indexes import SUGGESTION_SCAN_BUDGET


@pytest.fixture
def st(factory: StoreFactory) -> Store:
    return factory()


async def test_create_makes_a_new_session_and_refuses_an_existing_key(
    st: Store, make_session: SessionFactory
) -> None:
    key = await aw(st.sessions.create(make_session("s", kept=True)))
    assert (await aw(st.sessions.get(key))).revision == 1
    with pytest.raises(SessionExists) as caught:
        await aw(st.sessions.create(make_session("s", kept=False)))
    assert caught.value.session_key == key and caught.value.actual == 1
    assert f"already stored under key {key!r}" in str(caught.value)
    assert "force=True" in str(caught.value)
    loaded = await aw(st.sessions.get(key))
    with pytest.raises(SessionExists):  # create() never updates, even a loaded copy
        await aw(st.sessions.create(loaded))
    assert (await aw(st.sessions.get(key))).metadata == {"kept": True}


async def test_save_of_a_fresh_copy_says_the_session_exists_and_force_upserts(
    st: Store, make_session: SessionFactory
) -> None:
    key = await aw(st.sessions.save(make_session("s", run=1)))
    fresh = make_session("s", run=2)
    with pytest.raises(SessionExists) as caught:
        await aw(st.sessions.save(fresh))
    assert isinstance(caught.value, ConcurrentModification)  # old handlers keep working
    assert "read at revision 0" not in str(caught.value)
    assert await aw(st.sessions.save(fresh, force=True)) == key  # the upsert path
    assert fresh.revision == 2
    assert (await aw(st.sessions.get(key))).metadata == {"run": 2}
    again = make_session("s", run=3)
    await aw(st.sessions.save(again, force=True))
    assert (await aw(st.sessions.get(key))).metadata == {"run": 3}


async def test_stale_loaded_copy_is_still_a_plain_concurrent_modification(
    st: Store, make_session: SessionFactory
) -> None:
    key = await aw(st.sessions.create(make_session("s")))
    a, b = await aw(st.sessions.get(key)), await aw(st.sessions.get(key))
    await aw(st.sessions.save(a))
    with pytest.raises(ConcurrentModification) as caught:
        await aw(st.sessions.save(b))
    assert not isinstance(caught.value, SessionExists)
    assert (caught.value.expected, caught.value.actual) == (1, 2)


async def test_session_id_instead_of_key_suggests_the_key(
    st: Store, make_session: SessionFactory
) -> None:
    key = await aw(st.sessions.save(make_session("c2", "mc_to_agent", roles=("analyst",))))
    assert key == "c2_mc_to_analyst"
    await aw(st.sessions.save(make_session("c20", "mc_to_agent", roles=("analyst",))))
    message = {"role": "user", "content": "hi"}
    for call in (
        lambda: st.messages.append("c2", message),
        lambda: st.messages.count("c2"),
        lambda: st.messages.history("c2"),
        lambda: st.sessions.touch("c2"),
    ):
        with pytest.raises(SessionNotFound) as caught:
            await aw(call())
        assert caught.value.suggestions == ("c2_mc_to_analyst",)
        assert "did you mean 'c2_mc_to_analyst'?" in str(caught.value)
    with pytest.raises(SessionNotFound) as caught:
        await aw(st.messages.append("nothing-like-it", message))
    assert caught.value.suggestions == ()
    assert "did you mean" not in str(caught.value)


async def test_glob_characters_in_the_key_are_matched_literally(
    st: Store, make_session: SessionFactory
) -> None:
    await aw(st.sessions.save(make_session("a*b", "mc_to_agent", roles=("x",))))
    await aw(st.sessions.save(make_session("aXb", "mc_to_agent", roles=("x",))))
    with pytest.raises(SessionNotFound) as caught:
        await aw(st.messages.count("a*b"))
    assert caught.value.suggestions == ("a*b_mc_to_x",)


def test_suggestion_lookup_is_one_bounded_script() -> None:
    from convstore import KeySpace, Retention, lua
    from convstore.plans import Run, StoreConfig
    from convstore.plans.indexes import missing_session

    plan = missing_session(StoreConfig(KeySpace("ns"), Retention()), "a*b")
    step = next(plan)
    assert step == Run(lua.SUGGEST, ("ns:idx:all",), ("a\\*b_*", SUGGESTION_SCAN_BUDGET, 250, 3))
    with pytest.raises(SessionNotFound) as caught:
        plan.send([b"a*b_z", b"a*b_y", b"a*b_x"])
    assert caught.value.suggestions == ("a*b_x", "a*b_y", "a*b_z")


async def test_suggestion_script_on_a_big_index(st: Store) -> None:
    """ZSCAN inside the script works on both backends; the store's budget only bounds the work."""
    from convstore import lua
    from convstore.plans import Run

    index = st.config.keyspace.index_all
    await aw(st.client.zadd(index, {**{f"other{i}": i for i in range(6000)}, "zzz_1": 1}))
    whole = Run(lua.SUGGEST, (index,), ("zzz_*", 10_000, 500, 3))
    assert await aw(st.driver.run(_one(whole))) == [b"zzz_1"]
    assert (
        await aw(st.driver.run(_one(Run(lua.SUGGEST, (index,), ("nope_*", 10_000, 500, 3))))) == []
    )
    with pytest.raises(SessionNotFound) as caught:  # 500 of 6,001 examined: maybe found
        await aw(st.messages.count("zzz"))
    assert caught.value.suggestions in ((), ("zzz_1",))


def _one(step: object):  # type: ignore[no-untyped-def]
    """A plan of one step that returns the step's reply."""
    return (yield step)
