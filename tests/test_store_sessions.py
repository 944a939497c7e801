"""store.sessions on fakeredis and the real server, through the sync and the async store.

Every scenario is written once, as an async test over ``st``: the sync or the async store on
the same client backend. ``aw`` awaits what needs awaiting, so the sync store runs the very
same body. Redis itself is inspected through the sync client of the same backend.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import redis

from conftest import SessionFactory, Store, StoreFactory, aw, new_namespace
from convstore import (
    ConversationParticipant,
    ConversationSession,
    Retention,
    utc_now,
)
from convstore import lua as lua_scripts
from convstore.errors import (
    CodecError,
    ConcurrentModification,
    SessionKeyConflict,
    SessionNotFound,
    ValidationError,
)
from convstore.keys import MAX_SESSION_KEY_LENGTH


@pytest.fixture
def st(factory: StoreFactory) -> Store:
    return factory()


@pytest.fixture
def other_namespace(sync_client: redis.Redis) -> Iterator[str]:
    """A second namespace for isolation tests; its keys are deleted afterwards."""
    ns = new_namespace()
    yield ns
    keys = list(sync_client.scan_iter(match=f"{ns}:*", count=1000))
    if keys:
        sync_client.delete(*keys)


def index_keys(st: Store, session: ConversationSession) -> list[str]:
    ks, kind = st.config.keyspace, str(session.session_type)
    keys = [ks.index_all, ks.index_type(kind)]
    for p in session.participants:
        keys += [
            ks.index_participant(p.participant_id),
            ks.index_participant_type(p.participant_id, kind),
        ]
    return keys


async def list_keys(st: Store, *args: Any, **kwargs: Any) -> list[str]:
    page = await aw(st.sessions.list(*args, **kwargs))
    return [s.generate_session_key() for s in page.items]


# --------------------------------------------------------------------------- save / get


async def test_save_returns_the_generated_key_and_sets_revision(
    st: Store, make_session: SessionFactory
) -> None:
    session = make_session("s1", "mc_to_agent", roles=("writer",))
    assert session.revision == 0
    key = await aw(st.sessions.save(session))
    assert key == "s1_mc_to_writer" == session.generate_session_key()
    assert session.revision == 1
    assert await aw(st.sessions.exists(key))
    session.metadata["step"] = 2
    assert await aw(st.sessions.save(session)) == key
    assert session.revision == 2
    stored = await aw(st.sessions.get(key))
    assert stored.revision == 2
    assert stored.metadata == {"step": 2}


@pytest.mark.parametrize(
    ("session_type", "roles", "expected_key"),
    [
        ("user_to_mc", (), "sess"),
        ("mc_to_agent", ("writer",), "sess_mc_to_writer"),
        ("agent_to_agent", ("writer", "researcher"), "sess_writer_to_researcher"),
        ("user_to_agent", ("researcher",), "sess_user_to_researcher"),
    ],
)
async def test_get_round_trips_the_session(
    st: Store,
    make_session: SessionFactory,
    session_type: str,
    roles: tuple[str, ...],
    expected_key: str,
) -> None:
    plus5 = timezone(timedelta(hours=5))
    created = datetime(2024, 3, 1, 17, 30, 15, 123456, tzinfo=plus5)
    active = datetime(2024, 3, 2, 8, 0, 0, 654321, tzinfo=UTC)
    session = make_session(
        "sess",
        session_type,
        roles=roles or ("writer",),
        tags=["a", "b"],
        nested={"depth": {"list": [1, 2.5, None, True, "x"]}, "when": active},
        unicode="日本語 🎉",
    )
    session.created_at, session.last_activity = created, active
    session.participants[0].metadata = {"name": "Ada", "scores": [1, 2, 3]}
    session.validate()

    key = await aw(st.sessions.save(session))
    assert key == expected_key
    got = await aw(st.sessions.get(key))

    assert got == session
    assert got == ConversationSession.from_dict(session.to_dict())
    assert got.to_dict() == session.to_dict()
    assert got.revision == session.revision == 1
    for moment in (got.created_at, got.last_activity, got.metadata["nested"]["when"]):
        assert moment.utcoffset() == timedelta(0)
    assert got.created_at == created  # same instant, now labelled UTC
    assert got.created_at.hour == 12
    assert got.last_activity == active
    assert got is not session


async def test_get_and_exists_of_an_unknown_key(st: Store) -> None:
    assert await aw(st.sessions.get("nobody")) is None
    assert await aw(st.sessions.exists("nobody")) is False


async def test_invalid_session_writes_nothing(
    st: Store, make_session: SessionFactory, sync_client: redis.Redis
) -> None:
    bad_meta = make_session("bad", flags={1, 2})
    with pytest.raises(CodecError):
        await aw(st.sessions.save(bad_meta))
    broken = make_session("broken")
    broken.participants = []
    with pytest.raises(ValidationError):
        await aw(st.sessions.save(broken))
    for key in ("bad", "broken"):
        assert sync_client.exists(*st.config.keyspace.session(key).all()) == 0
    assert sync_client.zcard(st.config.keyspace.index_all) == 0


# --------------------------------------------------------------------------- optimistic concurrency


async def test_stale_copy_raises_concurrent_modification(
    st: Store, make_session: SessionFactory
) -> None:
    key = await aw(st.sessions.save(make_session("s")))
    first = await aw(st.sessions.get(key))
    second = await aw(st.sessions.get(key))
    assert first.revision == second.revision == 1

    first.metadata["by"] = "first"
    await aw(st.sessions.save(first))
    assert first.revision == 2

    second.metadata["by"] = "second"
    with pytest.raises(ConcurrentModification) as caught:
        await aw(st.sessions.save(second))
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert second.revision == 1
    stored = await aw(st.sessions.get(key))
    assert stored.metadata == {"by": "first"}
    assert stored.revision == 2

    await aw(st.sessions.save(second, force=True))
    assert second.revision == 3
    stored = await aw(st.sessions.get(key))
    assert stored.metadata == {"by": "second"}
    assert stored.revision == 3


async def test_new_object_for_an_existing_key_is_a_concurrent_modification(
    st: Store, make_session: SessionFactory
) -> None:
    original = make_session("s", kept=True)
    key = await aw(st.sessions.save(original))
    fresh = make_session("s", kept=False)
    assert fresh.revision == 0
    with pytest.raises(ConcurrentModification) as caught:
        await aw(st.sessions.save(fresh))
    assert (caught.value.expected, caught.value.actual) == (0, 1)
    assert (await aw(st.sessions.get(key))).metadata == {"kept": True}
    await aw(st.sessions.save(fresh, force=True))
    assert fresh.revision == 2
    assert (await aw(st.sessions.get(key))).metadata == {"kept": False}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # agent_to_agent s_a (roles b, c) and s (roles a_b, c) both generate "s_a_b_to_c"
        (("s_a", "agent_to_agent", ("b", "c")), ("s", "agent_to_agent", ("a_b", "c"))),
        # user_to_mc "s_mc_to_writer" and mc_to_agent "s" with role writer
        (("s_mc_to_writer", "user_to_mc", ("writer",)), ("s", "mc_to_agent", ("writer",))),
    ],
    ids=["agent_to_agent", "user_to_mc_vs_mc_to_agent"],
)
async def test_colliding_session_keys_raise_session_key_conflict(
    st: Store,
    make_session: SessionFactory,
    sync_client: redis.Redis,
    first: tuple[str, str, tuple[str, ...]],
    second: tuple[str, str, tuple[str, ...]],
) -> None:
    one = make_session(first[0], first[1], roles=first[2], owner="first")
    two = make_session(second[0], second[1], roles=second[2], owner="second")
    key = one.generate_session_key()
    assert two.generate_session_key() == key

    assert await aw(st.sessions.save(one)) == key
    await aw(st.messages.append(key, {"role": "user", "content": "hello"}))
    before = await aw(st.sessions.get(key))
    assert before.metadata == {"owner": "first"}
    for force in (False, True):  # force skips the revision check, never the key check
        two.revision = 0 if not force else 1
        with pytest.raises(SessionKeyConflict) as caught:
            await aw(st.sessions.save(two, force=force))
        assert caught.value.session_key == key

    stored = await aw(st.sessions.get(key))
    assert stored == before
    assert stored.revision == 1
    assert [m["content"] for m in await aw(st.messages.history(key))] == ["hello"]
    # the loser's index entries were not written
    for index in set(index_keys(st, two)) - set(index_keys(st, one)):
        assert sync_client.zscore(index, key) is None
    assert await list_keys(st) == [key]


# --------------------------------------------------------------------------- list


async def test_list_filters_and_orders_by_last_activity(
    st: Store, make_session: SessionFactory
) -> None:
    t0 = utc_now() - timedelta(hours=1)
    sessions = {
        "a": make_session("a", "user_to_mc", at=t0 + timedelta(seconds=1)),
        "b": make_session("b", "mc_to_agent", roles=("writer",), at=t0 + timedelta(seconds=2)),
        "c": make_session(
            "c", "agent_to_agent", roles=("writer", "researcher"), at=t0 + timedelta(seconds=3)
        ),
        "d": make_session(
            "d", "user_to_agent", roles=("researcher",), at=t0 + timedelta(seconds=4)
        ),
        "e": make_session("e", "user_to_mc", at=t0 + timedelta(seconds=5)),
    }
    keys = {name: await aw(st.sessions.save(s)) for name, s in sessions.items()}
    a, b, c, d, e = (keys[n] for n in "abcde")

    page = await aw(st.sessions.list())
    assert [s.generate_session_key() for s in page.items] == [e, d, c, b, a]
    assert page.cursor is None
    assert page.items[0] == sessions["e"]
    assert await list_keys(st, participant_id="user_1") == [e, d, a]
    assert await list_keys(st, participant_id="mc_1") == [e, b, a]
    assert await list_keys(st, participant_id="agent_writer") == [c, b]
    assert await list_keys(st, participant_id="agent_researcher") == [d, c]
    assert await list_keys(st, session_type="user_to_mc") == [e, a]
    assert await list_keys(st, session_type="agent_to_agent") == [c]
    assert await list_keys(st, "user_1", "user_to_mc") == [e, a]
    assert await list_keys(st, "user_1", "user_to_agent") == [d]
    assert await list_keys(st, "agent_writer", "mc_to_agent") == [b]
    assert await list_keys(st, "agent_writer", "user_to_mc") == []
    assert await list_keys(st, participant_id="nobody") == []
    assert await list_keys(st, session_type="mc_to_agent", limit=1) == [b]

    # activity moves a session to the front: touch, then an append
    touched = await aw(st.sessions.touch(a))
    assert await list_keys(st) == [a, e, d, c, b]
    assert (await aw(st.sessions.get(a))).last_activity == touched
    await aw(st.messages.append(b, {"role": "user", "content": "hi"}))
    assert await list_keys(st) == [b, a, e, d, c]
    assert await list_keys(st, participant_id="agent_writer") == [b, c]
    assert await list_keys(st, "user_1", "user_to_mc") == [a, e]


async def test_list_follows_changed_participants(st: Store, make_session: SessionFactory) -> None:
    session = make_session("a")
    key = await aw(st.sessions.save(session))
    session.participants[0] = ConversationParticipant("user_2", "user")
    await aw(st.sessions.save(session))
    assert await list_keys(st, participant_id="user_1") == []
    assert await list_keys(st, "user_1", "user_to_mc") == []
    assert await list_keys(st, participant_id="user_2") == [key]
    assert await list_keys(st, "user_2", "user_to_mc") == [key]
    assert await list_keys(st) == [key]


async def test_list_rejects_bad_arguments(st: Store) -> None:
    with pytest.raises(ValidationError):
        await aw(st.sessions.list(session_type="user_to_everyone"))
    for limit in (0, -1, True):
        with pytest.raises(ValidationError):
            await aw(st.sessions.list(limit=limit))
    with pytest.raises(ValidationError):
        await aw(st.sessions.list(cursor="not-a-cursor"))


@pytest.mark.parametrize("participant_id", [None, "user_1"])
async def test_list_cursor_pages_without_gaps_or_repeats(
    st: Store, make_session: SessionFactory, participant_id: str | None
) -> None:
    t0 = utc_now() - timedelta(hours=1)
    # groups of three share a last_activity, so the cursor must break ties
    sessions = [make_session(f"s{i:02d}", at=t0 + timedelta(seconds=i // 3)) for i in range(25)]
    for session in sessions:
        await aw(st.sessions.save(session))

    seen: list[ConversationSession] = []
    sizes: list[int] = []
    cursor = None
    for _ in range(10):
        page = await aw(st.sessions.list(participant_id, limit=7, cursor=cursor))
        seen += page.items
        sizes.append(len(page.items))
        cursor = page.cursor
        if cursor is None:
            break
    assert cursor is None
    assert sizes == [7, 7, 7, 4]
    keys = [s.generate_session_key() for s in seen]
    assert len(set(keys)) == 25
    assert sorted(keys) == sorted(s.session_id for s in sessions)
    activities = [s.last_activity for s in seen]
    assert activities == sorted(activities, reverse=True)
    by_key = {s.session_id: s for s in sessions}
    assert all(s == by_key[s.session_id] for s in seen)


async def test_list_pages_exactly_full_then_empty(st: Store, make_session: SessionFactory) -> None:
    t0 = utc_now() - timedelta(hours=1)
    for i in range(4):
        await aw(st.sessions.save(make_session(f"x{i}", at=t0 + timedelta(seconds=i))))
    first = await aw(st.sessions.list(limit=2))
    second = await aw(st.sessions.list(limit=2, cursor=first.cursor))
    rest = await aw(st.sessions.list(limit=2, cursor=second.cursor)) if second.cursor else None
    keys = [s.session_id for s in first.items + second.items]
    assert keys == ["x3", "x2", "x1", "x0"]
    assert rest is None or (rest.items == [] and rest.cursor is None)


async def test_list_uses_indexes_never_keys_or_scan(
    st: Store, make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        await aw(st.sessions.save(make_session(f"k{i}")))
    commands: list[str] = []
    original = st.client.execute_command

    def spy(*args: Any, **kwargs: Any) -> Any:
        commands.append(str(args[0]).upper())
        return original(*args, **kwargs)

    monkeypatch.setattr(st.client, "execute_command", spy)
    assert len(await list_keys(st)) == 3
    assert len(await list_keys(st, participant_id="user_1", limit=2)) == 2
    assert commands  # the spy saw the traffic
    assert not {"KEYS", "SCAN"} & set(commands)
    # and no script calls them either
    call = re.compile(r"redis\.call\(\s*'(KEYS|SCAN)'", re.IGNORECASE)
    for name in lua_scripts.__all__:
        script = getattr(lua_scripts, name)
        if isinstance(script, lua_scripts.Script):
            assert not call.search(script.source), name


async def test_list_drops_index_entries_of_expired_sessions(
    st: Store, make_session: SessionFactory, sync_client: redis.Redis
) -> None:
    for i in range(3):
        await aw(st.sessions.save(make_session(f"e{i}")))
    # as if e1 had expired by TTL: its hash is gone, its index entries stay behind
    sync_client.delete(st.config.keyspace.session("e1").session)
    keys = await list_keys(st)
    assert sorted(keys) == ["e0", "e2"]
    assert sync_client.zscore(st.config.keyspace.index_all, "e1") is None


# --------------------------------------------------------------------------- delete / touch


async def test_delete_removes_session_history_and_index_entries_only(
    st: Store, make_session: SessionFactory, sync_client: redis.Redis
) -> None:
    gone = make_session("gone", "mc_to_agent", roles=("writer",))
    kept = make_session("kept", "mc_to_agent", roles=("writer",))
    gone_key = await aw(st.sessions.save(gone))
    kept_key = await aw(st.sessions.save(kept))
    for key in (gone_key, kept_key):
        await aw(st.messages.append_many(key, [{"role": "user", "content": key}] * 3))
    gone_keys = st.config.keyspace.session(gone_key)
    kept_keys = st.config.keyspace.session(kept_key)
    sync_client.hset(gone_keys.checkpoints, "c", "1")  # adapter keys go too
    sync_client.set(gone_keys.task, "t")
    kept_before = await aw(st.sessions.get(kept_key))

    assert await aw(st.sessions.delete(gone_key)) is True
    assert sync_client.exists(*gone_keys.all()) == 0
    for index in index_keys(st, gone):
        assert sync_client.zscore(index, gone_key) is None
    assert await aw(st.sessions.get(gone_key)) is None
    assert await aw(st.sessions.exists(gone_key)) is False
    with pytest.raises(SessionNotFound):
        await aw(st.messages.history(gone_key))

    assert sync_client.exists(kept_keys.session, kept_keys.messages, kept_keys.ids) == 3
    for index in index_keys(st, kept):
        assert sync_client.zscore(index, kept_key) is not None
    kept_after = await aw(st.sessions.get(kept_key))
    assert kept_after == kept_before
    assert kept_after.revision == kept_before.revision
    assert [m["content"] for m in await aw(st.messages.history(kept_key))] == [kept_key] * 3
    assert await list_keys(st, participant_id="mc_1") == [kept_key]

    assert await aw(st.sessions.delete(gone_key)) is False
    assert await aw(st.sessions.delete("never-was")) is False
    # the key is free again: a new session may take it
    fresh = make_session("gone", "mc_to_agent", roles=("writer",))
    assert await aw(st.sessions.save(fresh)) == gone_key
    assert fresh.revision == 1
    assert await aw(st.messages.history(gone_key)) == []


async def test_touch(st: Store, make_session: SessionFactory) -> None:
    with pytest.raises(SessionNotFound) as caught:
        await aw(st.sessions.touch("nobody"))
    assert caught.value.session_key == "nobody"
    old = utc_now() - timedelta(days=1)
    key = await aw(st.sessions.save(make_session("t", at=old)))
    before = utc_now()
    moment = await aw(st.sessions.touch(key))
    assert moment.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= moment <= utc_now() + timedelta(seconds=1)
    stored = await aw(st.sessions.get(key))
    assert stored.last_activity == moment
    assert stored.created_at == old
    assert stored.revision == 1  # activity is not a modification


async def test_save_never_moves_last_activity_backwards(
    st: Store, make_session: SessionFactory
) -> None:
    key = await aw(st.sessions.save(make_session("m", at=utc_now() - timedelta(days=2))))
    moment = await aw(st.sessions.touch(key))
    stale = await aw(st.sessions.get(key))
    stale.last_activity = utc_now() - timedelta(days=5)
    await aw(st.sessions.save(stale))
    assert stale.last_activity == moment
    assert (await aw(st.sessions.get(key))).last_activity == moment


# --------------------------------------------------------------------------- TTL and retention


async def test_ttl_covers_session_and_stream_and_slides(
    factory: StoreFactory, make_session: SessionFactory, sync_client: redis.Redis
) -> None:
    st = factory(ttl=60)
    key = await aw(st.sessions.save(make_session("ttl")))
    keys = st.config.keyspace.session(key)
    assert 0 < sync_client.pttl(keys.session) <= 60_000
    assert sync_client.pttl(keys.messages) == -2  # no stream before the first message

    await aw(st.messages.append(key, {"role": "user", "content": "one"}))
    for name in (keys.session, keys.messages, keys.ids):
        assert 0 < sync_client.pttl(name) <= 60_000

    for name in (keys.session, keys.messages, keys.ids):
        sync_client.pexpire(name, 5_000)
    await aw(st.messages.append(key, {"role": "user", "content": "two"}))
    for name in (keys.session, keys.messages, keys.ids):
        assert 50_000 < sync_client.pttl(name) <= 60_000

    sync_client.pexpire(keys.session, 5_000)
    await aw(st.sessions.touch(key))
    assert sync_client.pttl(keys.session) > 50_000

    plain = factory()
    other = await aw(plain.sessions.save(make_session("no-ttl")))
    await aw(plain.messages.append(other, {"role": "user", "content": "x"}))
    other_keys = plain.config.keyspace.session(other)
    assert sync_client.pttl(other_keys.session) == -1
    assert sync_client.pttl(other_keys.messages) == -1


async def test_set_retention_overrides_one_session(
    factory: StoreFactory, make_session: SessionFactory, sync_client: redis.Redis
) -> None:
    st = factory(ttl=60, max_messages=10)
    special = await aw(st.sessions.save(make_session("special")))
    normal = await aw(st.sessions.save(make_session("normal")))
    sk, nk = st.config.keyspace.session(special), st.config.keyspace.session(normal)

    await aw(st.sessions.set_retention(special, Retention(max_messages=3, ttl=600)))
    assert 60_000 < sync_client.pttl(sk.session) <= 600_000
    batch = [{"role": "user", "content": str(i)} for i in range(12)]
    await aw(st.messages.append_many(special, batch))
    await aw(st.messages.append_many(normal, batch))
    assert [m["content"] for m in await aw(st.messages.history(special))] == ["9", "10", "11"]
    assert await aw(st.messages.count(normal)) == 10
    assert 60_000 < sync_client.pttl(sk.messages) <= 600_000
    assert 0 < sync_client.pttl(nk.messages) <= 60_000

    await aw(st.sessions.set_retention(special, Retention()))  # explicitly: no limits at all
    assert sync_client.pttl(sk.session) == -1
    assert sync_client.pttl(sk.messages) == -1
    await aw(st.messages.append_many(special, batch))
    assert await aw(st.messages.count(special)) == 15

    await aw(st.sessions.set_retention(special, None))  # back to the store's defaults
    assert 0 < sync_client.pttl(sk.session) <= 60_000
    await aw(st.messages.append(special, {"role": "user", "content": "last"}))
    assert await aw(st.messages.count(special)) == 10

    with pytest.raises(SessionNotFound):
        await aw(st.sessions.set_retention("nobody", Retention(max_messages=1)))
    with pytest.raises(ValidationError):
        Retention(max_messages=0)
    with pytest.raises(ValidationError):
        Retention(ttl=-1)


# --------------------------------------------------------------------------- keys and namespaces


UNUSUAL_IDS = [
    "with space",
    "{tag}",
    "{",
    "}",
    "%7B",
    "%7Btag%7D",
    "a%b",
    ":",
    "ns:{s}:session",
    "*",
    "*?[ab]",
    "日本語 🎉",
    "tab\tnewline\n",
    "\x00nul",
    "ends with space ",
]


async def test_any_unicode_session_key_maps_to_its_own_keys(
    st: Store, make_session: SessionFactory, sync_client: redis.Redis
) -> None:
    names = {st.config.keyspace.session(k).session for k in UNUSUAL_IDS}
    assert len(names) == len(UNUSUAL_IDS)
    for key in UNUSUAL_IDS:
        all_keys = st.config.keyspace.session(key).all()
        tags = {name[name.index("{") + 1 : name.index("}")] for name in all_keys}
        assert len(tags) == 1  # one hash tag, so one cluster slot
        assert all(name.count("{") == 1 and name.count("}") == 1 for name in all_keys)

    for sid in UNUSUAL_IDS:
        session = make_session(sid, label=sid)
        assert await aw(st.sessions.save(session)) == sid
        await aw(st.messages.append(sid, {"role": "user", "content": sid}))
    for sid in UNUSUAL_IDS:
        stored = await aw(st.sessions.get(sid))
        assert stored.session_id == sid
        assert stored.metadata == {"label": sid}
        assert [m["content"] for m in await aw(st.messages.history(sid))] == [sid]
    assert sorted(await list_keys(st, limit=100)) == sorted(UNUSUAL_IDS)
    assert await aw(st.sessions.delete("{tag}"))
    assert await aw(st.sessions.exists("%7Btag%7D"))
    assert sorted(await list_keys(st, limit=100)) == sorted(set(UNUSUAL_IDS) - {"{tag}"})


@pytest.mark.parametrize("char", ["x", "é", "🎉", "{"])
async def test_session_key_length_limit(
    st: Store, make_session: SessionFactory, sync_client: redis.Redis, char: str
) -> None:
    longest = char * MAX_SESSION_KEY_LENGTH
    assert await aw(st.sessions.save(make_session(longest))) == longest
    await aw(st.messages.append(longest, {"role": "user", "content": "fits"}))
    assert (await aw(st.sessions.get(longest))).session_id == longest
    assert [m["content"] for m in await aw(st.messages.history(longest))] == ["fits"]

    too_long = longest + char
    with pytest.raises(ValidationError) as caught:
        await aw(st.sessions.save(make_session(too_long)))
    assert caught.value.field == "session_key"
    for operation in (
        st.sessions.get,
        st.sessions.exists,
        st.sessions.touch,
        st.sessions.delete,
        st.messages.history,
        st.messages.count,
    ):
        with pytest.raises(ValidationError):
            await aw(operation(too_long))
    with pytest.raises(ValidationError):
        await aw(st.messages.append(too_long, {"role": "user", "content": "x"}))
    assert sync_client.zcard(st.config.keyspace.index_all) == 1
    with pytest.raises(ValidationError):
        await aw(st.sessions.get(""))


async def test_namespaces_never_see_each_other(
    factory: StoreFactory,
    make_session: SessionFactory,
    other_namespace: str,
) -> None:
    one, two = factory(), factory(ns=other_namespace)
    mine, theirs = make_session("s", side="one"), make_session("s", side="two")
    assert await aw(one.sessions.save(mine)) == await aw(two.sessions.save(theirs)) == "s"
    assert mine.revision == theirs.revision == 1  # no conflict across namespaces
    await aw(one.messages.append("s", {"role": "user", "content": "one"}))
    await aw(two.messages.append_many("s", [{"role": "user", "content": "two"}] * 2))

    assert (await aw(one.sessions.get("s"))).metadata == {"side": "one"}
    assert (await aw(two.sessions.get("s"))).metadata == {"side": "two"}
    assert [m["content"] for m in await aw(one.messages.history("s"))] == ["one"]
    assert await aw(two.messages.count("s")) == 2
    only_one = await aw(one.sessions.list())
    assert [s.metadata for s in only_one.items] == [{"side": "one"}]

    await aw(two.sessions.save(make_session("only-two")))
    assert await aw(one.sessions.get("only-two")) is None
    assert await list_keys(one) == ["s"]
    assert await aw(one.sessions.delete("s"))
    assert (await aw(two.sessions.get("s"))).metadata == {"side": "two"}
    assert await aw(two.messages.count("s")) == 2
    assert sorted(await list_keys(two)) == ["only-two", "s"]


async def test_list_cursor_with_unusual_keys_and_one_shared_activity(
    st: Store, make_session: SessionFactory
) -> None:
    moment = utc_now() - timedelta(minutes=5)
    for sid in UNUSUAL_IDS:
        await aw(st.sessions.save(make_session(sid, at=moment)))
    seen: list[str] = []
    cursor = None
    while True:
        page = await aw(st.sessions.list(limit=2, cursor=cursor))
        assert len(page.items) <= 2
        seen += [s.session_id for s in page.items]
        cursor = page.cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == len(UNUSUAL_IDS)
    assert set(seen) == set(UNUSUAL_IDS)


async def test_list_by_participants_with_unusual_ids(
    st: Store, make_session: SessionFactory
) -> None:
    # "a\nb" must not leak into the index of "a" (the index list is newline separated)
    users = ["a\nb", "a%0Ab", "a", "b", "{a}", "%7Ba%7D", "a:b", "* ?"]
    for i, user in enumerate(users):
        session = make_session(f"u{i}")
        session.participants[0] = ConversationParticipant(user, "user")
        await aw(st.sessions.save(session))
    for i, user in enumerate(users):
        assert await list_keys(st, participant_id=user) == [f"u{i}"]
        assert await list_keys(st, user, "user_to_mc") == [f"u{i}"]
    for i in range(len(users)):
        assert await aw(st.sessions.delete(f"u{i}"))
    for user in users:
        assert await list_keys(st, participant_id=user) == []
