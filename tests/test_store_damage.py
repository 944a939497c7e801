"""Reads that isolate damage: bytes written straight into convstore's keys, one known crash each.

A damaged entry or session raises :class:`CodecError` naming the key (and stream entry id);
``on_error="skip"`` leaves it out and reports it (``skipped``, a WARNING, the
``store.skipped`` metric). Writes to a session whose hash is damaged refuse before writing.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
import redis

from conftest import SessionFactory, Store, StoreFactory, aw
from convstore import codec, set_metrics_hook, utc_now
from convstore.errors import CodecError, ValidationError


@pytest.fixture
def st(factory: StoreFactory) -> Store:
    return factory()


def msg(content: str) -> dict[str, Any]:
    return {"role": "user", "content": content}


def agent_meta(**extra: Any) -> dict[str, Any]:
    return {
        "sender_id": "agent_a",
        "sender_type": "agent",
        "recipient_id": "mc_1",
        "recipient_type": "master_controller",
        **extra,
    }


async def with_messages(st: Store, make_session: SessionFactory, sid: str = "d") -> str:
    key: str = await aw(st.sessions.save(make_session(sid)))
    await aw(st.messages.append_many(key, [msg("one"), msg("two")]))
    return key


def raw_entry(content: str = "raw", **metadata: Any) -> bytes:
    return codec.encode_entry("user", content, utc_now(), metadata)


# --------------------------------------------------------------------------- stream entries


async def test_entry_with_two_fields_is_named_or_skipped(
    st: Store,
    sync_client: redis.Redis,
    make_session: SessionFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = await with_messages(st, make_session)
    stream = st.config.keyspace.session(key).messages
    bad = sync_client.xadd(stream, {b"ta": raw_entry(), b"tb": raw_entry()}).decode()
    sync_client.xadd(stream, {codec.encode_message_id("m3"): raw_entry("three")})

    for read in (
        lambda: st.messages.history(key),
        lambda: st.messages.history(key, 2),
        lambda: st.messages.read(key),
        lambda: st.messages.read(key, 2),
        lambda: st.messages.page(key),
        lambda: st.messages.agent_messages(key),
    ):
        with pytest.raises(CodecError, match="has 2 fields") as info:
            await aw(read())
        assert info.value.key == key and info.value.entry_id == bad
        assert repr(key) in str(info.value) and bad in str(info.value)

    seen: list[tuple[str, float, dict[str, str]]] = []
    previous = set_metrics_hook(
        lambda name, value, labels: seen.append((name, value, dict(labels)))
    )
    try:
        with caplog.at_level(logging.WARNING, logger="convstore"):
            history = await aw(st.messages.history(key, on_error="skip"))
    finally:
        set_metrics_hook(previous)
    assert [m["content"] for m in history] == ["one", "two", "three"]
    assert [e.entry_id for e in history.skipped] == [bad]
    assert ("store.skipped", 1, {"operation": "history"}) in seen
    assert any(bad in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)

    page = await aw(st.messages.page(key, limit=2, on_error="skip"))
    assert [m["content"] for m in page.items] == ["three"]  # the damaged one counts as read
    assert [e.entry_id for e in page.skipped] == [bad] and page.cursor == bad
    older = await aw(st.messages.page(key, before=page.cursor, limit=2, on_error="skip"))
    assert [m["content"] for m in older.items] == ["one", "two"] and older.skipped == ()


async def test_garbage_entries_each_name_their_entry(
    st: Store, sync_client: redis.Redis, make_session: SessionFactory
) -> None:
    key = await with_messages(st, make_session)
    stream = st.config.keyspace.session(key).messages
    bad = [
        sync_client.xadd(stream, {b"\xff\xfe": raw_entry()}),  # not a stored message id
        sync_client.xadd(stream, {b"tx": b"\xc1 not msgpack"}),
        sync_client.xadd(stream, {b"tx": b"\xa3abc"}),  # msgpack, not a map
        sync_client.xadd(stream, {b"tx": b"x" * 100}),
    ]
    history = await aw(st.messages.history(key, on_error="skip"))
    assert [m["content"] for m in history] == ["one", "two"]
    assert [e.entry_id for e in history.skipped] == [b.decode() for b in bad]
    assert all(e.key == key for e in history.skipped)
    typed = await aw(st.messages.read(key, on_error="skip"))
    assert [m.as_dict() for m in typed] == history
    assert [e.entry_id for e in typed.skipped] == [b.decode() for b in bad]
    with pytest.raises(CodecError) as info:
        await aw(st.messages.read(key))
    assert info.value.key == key and info.value.entry_id == bad[0].decode()


async def test_unhashable_message_type_with_a_filter(
    st: Store, sync_client: redis.Redis, make_session: SessionFactory
) -> None:
    key = await with_messages(st, make_session)
    stream = st.config.keyspace.session(key).messages
    good = sync_client.xadd(stream, {b"tgood": raw_entry("fine", **agent_meta())})
    bad = sync_client.xadd(stream, {b"tbad": raw_entry("x", **agent_meta(message_type=[1]))})
    with pytest.raises(CodecError, match="message_type") as info:
        await aw(st.messages.agent_messages(key, message_types=["communication"]))
    assert info.value.entry_id == bad.decode() and info.value.key == key
    found = await aw(
        st.messages.agent_messages(key, message_types=["communication"], on_error="skip")
    )
    assert [m.content for m in found] == ["fine"] and good
    assert [e.entry_id for e in found.skipped] == [bad.decode()]


async def test_on_error_is_checked(st: Store, make_session: SessionFactory) -> None:
    key = await with_messages(st, make_session)
    for read in (
        lambda: st.messages.history(key, on_error="ignore"),
        lambda: st.messages.page(key, on_error="ignore"),
        lambda: st.sessions.list(on_error="ignore"),
    ):
        with pytest.raises(ValidationError, match="on_error") as info:
            await aw(read())  # type: ignore[no-untyped-call]
        assert info.value.allowed == ("raise", "skip")


# --------------------------------------------------------------------------- session hashes


#: A key outside the namespace that a damaged ``idx`` names; one per xdist worker, since
#: the workers share the database.
ELSEWHERE = f"elsewhere:{os.getpid()}:key"
GARBAGE = {
    "rev": [b"abc", b"1e400", b"\xff\xfe", b"-1", b"99999999999999999999"],
    "la": [b"abc", b"1e400", b"\xff\xfe", b"99999999999999999999", b"inf"],
    "n": [b"abc", b"-3", b"\xff"],
    "lid": [b"abc", b"5", b"1-x", b"99999999999999999999-0"],
    "idx": [ELSEWHERE.encode(), b"\xff\xfe"],
    "mm": [b"abc", b"-1"],
    "ma": [b"1.5", b"nan"],
    "ttl": [b"abc", b"1e3"],
}


@pytest.mark.parametrize("field", sorted(GARBAGE))
async def test_damaged_session_field_gives_a_typed_error_and_writes_nothing(
    field: str, st: Store, sync_client: redis.Redis, make_session: SessionFactory
) -> None:
    key = await with_messages(st, make_session)
    keys = st.config.keyspace.session(key)
    for value in GARBAGE[field]:
        sync_client.hset(keys.session, field, value)
        if field == "idx":  # an append reads idx when the index scores move (a new second)
            sync_client.hset(keys.session, "la", "0")
        before = sync_client.xlen(keys.messages)
        # every script that reads this field refuses, naming it, and writes nothing
        writes = [
            lambda: st.messages.append(key, msg("lost?")),
            lambda: st.messages.append_many(key, [msg("a"), msg("b")]),
        ]
        if field in ("rev", "la", "idx", "ttl"):
            writes.append(lambda: st.sessions.touch(key))
        if field in ("rev", "la", "idx", "ttl", "n"):
            writes.append(lambda: st.sessions.save(make_session("d"), force=True))
        for write in writes:
            with pytest.raises(CodecError, match=f"stored field '{field}'") as info:
                await aw(write())
            assert info.value.key == key and info.value.path == field
        assert sync_client.xlen(keys.messages) == before
        assert sync_client.hget(keys.session, field) == value
        # reads of the session record name the session
        if field in ("rev", "la"):
            with pytest.raises(CodecError) as read_info:
                await aw(st.sessions.get(key))
            assert read_info.value.key == key
        else:
            assert (await aw(st.sessions.get(key))).session_id == "d"
        assert [m["content"] for m in await aw(st.messages.history(key))] == ["one", "two"]
    # delete is the way out, and touches nothing outside the namespace
    sync_client.set(ELSEWHERE, "untouched")
    try:
        assert await aw(st.sessions.delete(key)) is True
        assert sync_client.exists(keys.session, keys.messages) == 0
        assert sync_client.get(ELSEWHERE) == b"untouched"
    finally:
        sync_client.delete(ELSEWHERE)


async def test_damaged_ids_entry_refuses_a_retry(
    st: Store, sync_client: redis.Redis, make_session: SessionFactory
) -> None:
    key = await with_messages(st, make_session)
    keys = st.config.keyspace.session(key)
    first = await aw(st.messages.append(key, {**msg("x"), "metadata": {"message_id": "m1"}}))
    sync_client.hset(keys.ids, codec.encode_message_id("m1"), b"garbage")
    with pytest.raises(CodecError, match="'ids'"):
        await aw(st.messages.append(key, {**msg("x"), "metadata": {"message_id": "m1"}}))
    with pytest.raises(CodecError, match="'ids'"):
        await aw(st.messages.delete_message(key, "m1"))
    assert sync_client.xlen(keys.messages) == 3 and first.created


async def test_one_unreadable_session_in_list(
    st: Store, sync_client: redis.Redis, make_session: SessionFactory
) -> None:
    for sid in ("a", "b", "c"):
        await aw(st.sessions.save(make_session(sid)))
    bad_key = make_session("b").generate_session_key()
    sync_client.hset(st.config.keyspace.session(bad_key).session, "rec", b"\xc1garbage")
    with pytest.raises(CodecError) as info:
        await aw(st.sessions.list())
    assert info.value.key == bad_key and repr(bad_key) in str(info.value)
    page = await aw(st.sessions.list(on_error="skip"))
    assert sorted(s.session_id for s in page.items) == ["a", "c"]
    assert [e.key for e in page.skipped] == [bad_key]
    # paging past it: with limit=1 every session is reached exactly once
    seen, skipped, cursor = [], [], None
    while True:
        one = await aw(st.sessions.list(limit=1, cursor=cursor, on_error="skip"))
        seen += [s.session_id for s in one.items]
        skipped += [e.key for e in one.skipped]
        cursor = one.cursor
        if cursor is None:
            break
    assert sorted(seen) == ["a", "c"] and skipped == [bad_key]


async def test_damaged_index_member_is_named(
    st: Store, sync_client: redis.Redis, make_session: SessionFactory
) -> None:
    await aw(st.sessions.save(make_session("a")))
    index = st.config.keyspace.index_all
    sync_client.zadd(index, {b"\xff\xfe": 1})
    sync_client.zadd(index, {b"x" * 2000: 2})  # longer than any session key
    sync_client.zadd(index, {b"inf-score": float("inf")})
    with pytest.raises(CodecError) as info:
        await aw(st.sessions.list())
    assert info.value.key == index
    page = await aw(st.sessions.list(on_error="skip"))
    assert [s.session_id for s in page.items] == ["a"] and len(page.skipped) == 3
    assert sync_client.zcard(index) == 4  # a read deletes nothing it could not read


async def test_record_under_another_sessions_key(
    st: Store, sync_client: redis.Redis, make_session: SessionFactory
) -> None:
    one = await aw(st.sessions.save(make_session("one")))
    two = await aw(st.sessions.save(make_session("two")))
    ks = st.config.keyspace
    sync_client.hset(
        ks.session(two).session, "rec", sync_client.hget(ks.session(one).session, "rec")
    )
    with pytest.raises(CodecError, match="belongs to session key"):
        await aw(st.sessions.get(two))


async def test_bad_list_cursor_is_a_validation_error(st: Store) -> None:
    for cursor in ("²:x", "12", "x:y", "1:\ud800"):
        with pytest.raises(ValidationError, match="cursor"):
            await aw(st.sessions.list(cursor=cursor))


async def test_bad_history_cursor_is_a_validation_error(
    st: Store, make_session: SessionFactory
) -> None:
    key = await with_messages(st, make_session)
    for before in ("99999999999999999999-0", "1-99999999999999999999", "x", "1"):
        with pytest.raises(ValidationError, match="cursor"):
            await aw(st.messages.page(key, before=before))
