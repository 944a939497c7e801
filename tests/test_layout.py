"""Layouts 2 and 3: compare-and-append, tool-call fields, group-safe retention, and the
migration from layouts 1 and 2 (written here directly with redis-py, as convstore before
layout 3 did)."""

from __future__ import annotations

import io
import uuid
from typing import Any

import msgpack
import pytest
import redis

from conftest import SessionFactory, Store, StoreFactory, aw
from convstore import ConversationStore, Retention, codec, lua, utc_now
from convstore.errors import ConcurrentModification, StaleAppend, ValidationError
from convstore.keys import KeySpace
from convstore.layout import migrate_session_layout
from convstore.plans import Call, Run, StoreConfig
from convstore.plans.layout import MIGRATE_LAYOUT, tool_fields
from convstore.plans.layout import migrate_session_layout as plan
from convstore.transfer import export_jsonl


@pytest.fixture
def st(factory: StoreFactory) -> Store:
    return factory()


def msg(content: str, role: str = "user", **meta: Any) -> dict[str, Any]:
    return {"role": role, "content": content, "metadata": meta}


def call(content: str, *ids: str) -> dict[str, Any]:
    return msg(content, "assistant", tool_calls=[{"id": i, "type": "function"} for i in ids])


def result(call_id: str) -> dict[str, Any]:
    return msg(f"result {call_id}", "tool", tool_call_id=call_id)


async def contents(st: Store, key: str) -> list[str]:
    return [m["content"] for m in await aw(st.messages.history(key))]


# --------------------------------------------------------------------------- compare-and-append


async def test_expect_last_appends_only_on_the_expected_tail(
    st: Store, make_session: SessionFactory
) -> None:
    key = await aw(st.sessions.save(make_session("cas")))
    first = await aw(st.messages.append(key, msg("a"), expect_last="0-0"))
    with pytest.raises(StaleAppend) as info:
        await aw(st.messages.append(key, msg("lost"), expect_last="0-0"))
    assert isinstance(info.value, ConcurrentModification)
    assert (info.value.expected, info.value.actual) == ("0-0", first.entry_id)
    second = await aw(
        st.messages.append_many(key, [msg("b"), msg("c")], expect_last=first.entry_id)
    )
    assert await contents(st, key) == ["a", "b", "c"]
    with pytest.raises(StaleAppend):
        await aw(st.messages.append(key, msg("lost"), expect_last=first.entry_id))
    assert await contents(st, key) == ["a", "b", "c"]
    # a retry of stored messages succeeds whatever the tail is (idempotent)
    again = {"role": "user", "content": "b", "metadata": {"message_id": second[0].message_id}}
    retried = await aw(st.messages.append(key, again, expect_last="0-0"))
    assert (retried.entry_id, retried.created) == (second[0].entry_id, False)
    # a cleared session is empty again
    await aw(st.messages.clear(key))
    await aw(st.messages.append(key, msg("fresh"), expect_last="0-0"))
    assert await contents(st, key) == ["fresh"]


async def test_expect_last_must_be_an_entry_id(st: Store, make_session: SessionFactory) -> None:
    key = await aw(st.sessions.save(make_session("cas_bad")))
    for bad in ("", "1", "a-b", "1-2-3", 5):
        with pytest.raises(ValidationError) as info:
            await aw(st.messages.append(key, msg("x"), expect_last=bad))  # type: ignore[arg-type]
        assert info.value.field == "expect_last"
    assert await contents(st, key) == []


# --------------------------------------------------------------------------- tool fields


def test_tool_fields_encoding() -> None:
    assert tool_fields({}) == ""
    assert tool_fields({"tool_calls": [{"id": "a"}, {"id": "b\nc"}, {"x": 1}, "junk"]}) == (
        "a\nb%0Ac\t"
    )
    assert tool_fields({"tool_call_id": "50%\t"}) == "\t50%25%09"
    assert tool_fields({"tool_calls": "nope", "tool_call_id": 3}) == ""


async def test_tool_calls_get_plain_stream_fields(
    st: Store, make_session: SessionFactory, sync_client: redis.Redis
) -> None:
    key = await aw(st.sessions.save(make_session("tools")))
    await aw(st.messages.append_many(key, [msg("q"), call("c", "t1", "t2"), result("t1")]))
    rows = sync_client.xrange(st.config.keyspace.session(key).messages)
    assert [sorted(f) for _, f in rows] == [
        [b"d", b"m"],
        [b"d", b"m", b"tc"],
        [b"d", b"m", b"tr"],
    ]
    assert rows[1][1][b"tc"] == b"t1\nt2" and rows[2][1][b"tr"] == b"t1"
    history = await aw(st.messages.history(key))
    assert history[1]["metadata"]["tool_calls"][1]["id"] == "t2"
    assert history[2]["metadata"]["tool_call_id"] == "t1"


async def test_retention_drops_a_tool_group_whole(st: Store, make_session: SessionFactory) -> None:
    key = await aw(st.sessions.save(make_session("group")))
    await aw(st.sessions.set_retention(key, Retention(max_messages=3)))
    await aw(st.messages.append_many(key, [msg("q1"), call("c", "t1", "t2")]))
    await aw(st.messages.append_many(key, [result("t1"), result("t2"), msg("a1")]))
    # trimming to 3 would keep t1's and t2's results without their call: they go too
    assert await contents(st, key) == ["a1"]
    assert await aw(st.messages.count(key)) == 1
    await aw(st.messages.append_many(key, [msg("q2"), msg("q3"), msg("q4"), msg("q5")]))
    assert await contents(st, key) == ["q3", "q4", "q5"]


async def test_retention_keeps_the_newest_group_whole(
    st: Store, make_session: SessionFactory
) -> None:
    key = await aw(st.sessions.save(make_session("newest")))
    await aw(st.sessions.set_retention(key, Retention(max_messages=2)))
    await aw(st.messages.append_many(key, [msg("q"), call("c", "t1", "t2")]))
    await aw(st.messages.append_many(key, [result("t1"), result("t2")]))
    # dropping the orphaned results would leave nothing: the group stays, over the cap
    assert await contents(st, key) == ["c", "result t1", "result t2"]
    await aw(st.messages.append(key, msg("next")))
    # now the group is oldest and would be split again: call and both results go
    assert await contents(st, key) == ["next"]


async def test_retention_without_groups_is_unchanged(
    st: Store, make_session: SessionFactory
) -> None:
    key = await aw(st.sessions.save(make_session("plain")))
    await aw(st.sessions.set_retention(key, Retention(max_messages=3)))
    for i in range(7):
        await aw(st.messages.append(key, msg(str(i))))
    assert await contents(st, key) == ["4", "5", "6"]
    first = (await aw(st.messages.history(key)))[0]["metadata"]["message_id"]
    retried = await aw(
        st.messages.append(key, {"role": "user", "content": "4", "metadata": {"message_id": first}})
    )
    assert not retried.created  # dedup still covers every retained message


# --------------------------------------------------------------------------- layout 1 and migration


def map_entry(role: str, content: str, meta: dict[str, Any]) -> bytes:
    """A payload as convstore wrote it before layout 3: a msgpack map."""
    payload = {"v": 1, "r": role, "c": content, "t": utc_now(), "m": meta}
    packed: bytes = msgpack.packb(payload, use_bin_type=True, datetime=True)
    return packed


def write_layout_1(client: redis.Redis, store: ConversationStore, key: str, n: int) -> list[str]:
    """Entries as convstore wrote them before layout 2: field = stored id, old ids hash."""
    keys = store.config.keyspace.session(key)
    ids = []
    for i in range(n):
        mid = str(uuid.uuid4())
        meta: dict[str, Any] = {}
        if i == 1:
            meta = {"tool_calls": [{"id": "old1"}]}
        if i == 2:
            meta = {"tool_call_id": "old1"}
        payload = map_entry("user", f"old {i}", meta)
        stored = codec.encode_message_id(mid)
        entry = client.xadd(keys.messages, {stored: payload}, id=f"{1000 + i}-0")
        client.hset(keys.ids, stored, entry)
        ids.append(mid)
    client.hset(keys.session, mapping={"n": n, "lid": f"{1000 + n - 1}-0"})
    client.hdel(keys.session, "lv")
    client.pexpire(keys.messages, 600_000)
    return ids


def test_layout_1_reads_appends_and_migrates(
    backend: str, sync_client: redis.Redis, namespace: str, make_session: SessionFactory
) -> None:
    store = ConversationStore(sync_client, namespace=namespace)
    key = store.sessions.save(make_session("old"))
    keys = store.config.keyspace.session(key)
    ids = write_layout_1(sync_client, store, key, 4)
    before = store.messages.history(key)
    assert [m["metadata"]["message_id"] for m in before] == ids
    # a retry of an old message is still recognized through the old idempotency hash
    again = {"role": "user", "content": "old 0", "metadata": {"message_id": ids[0]}}
    assert not store.messages.append(key, again).created
    store.messages.append(key, msg("new"))  # mixed: old entries and one layout-2 entry
    assert sync_client.hget(keys.session, "lv") is None
    mixed = store.messages.history(key)

    assert migrate_session_layout(store, key) is True
    assert sync_client.hget(keys.session, "lv") == str(lua.LAYOUT_VERSION).encode()
    assert migrate_session_layout(store, key) is False  # idempotent
    rows = sync_client.xrange(keys.messages)
    assert all(set(f) <= {b"m", b"d", b"tc", b"tr"} and b"m" in f for _, f in rows)
    assert rows[1][1][b"tc"] == b"old1" and rows[2][1][b"tr"] == b"old1"
    assert [r[0] for r in rows] == [f"{1000 + i}-0".encode() for i in range(4)] + [rows[4][0]]
    assert store.messages.history(key) == mixed
    assert 0 < sync_client.pttl(keys.messages) <= 600_000  # the stream keeps its TTL
    assert not store.messages.append(key, again).created
    store.messages.delete_message(key, ids[3])
    assert [m["content"] for m in store.messages.history(key)] == ["old 0", "old 1", "old 2", "new"]
    assert msgpack.unpackb(rows[0][1][b"d"], timestamp=3)[:3] == [2, "user", "old 0"]


def test_layout_2_map_payloads_read_and_migrate_to_arrays(
    backend: str, sync_client: redis.Redis, namespace: str, make_session: SessionFactory
) -> None:
    """A layout-2 session (m/d fields, map payloads) reads, takes appends, and migrates to
    array payloads: same entry ids and tool fields, same history, same export."""
    store = ConversationStore(sync_client, namespace=namespace)
    key = store.sessions.save(make_session("two"))
    keys = store.config.keyspace.session(key)
    metas: list[dict[str, Any]] = [
        {"tool_calls": [{"id": "c1"}]},
        {"tool_call_id": "c1"},
        {"n": [1.5, None, b"x"]},
    ]
    tools = [{b"tc": b"c1"}, {b"tr": b"c1"}, {}]
    for i, (meta, tool) in enumerate(zip(metas, tools, strict=True)):
        stored = codec.encode_message_id(str(uuid.uuid4()))
        fields = {b"m": stored, b"d": map_entry("user", f"two {i}", meta), **tool}
        entry = sync_client.xadd(keys.messages, fields, id=f"{2000 + i}-0")  # type: ignore[arg-type]
        sync_client.hset(keys.ids, stored, entry)
    sync_client.hset(keys.session, mapping={"n": 3, "lid": "2002-0", "lv": "2"})
    store.messages.append(key, msg("new"))  # an array payload in a layout-2 session
    assert sync_client.hget(keys.session, "lv") == b"2"
    before = store.messages.history(key)
    assert [m["content"] for m in before] == ["two 0", "two 1", "two 2", "new"]
    exported = io.StringIO()
    export_jsonl(store, exported, keys=[key])
    old_rows = sync_client.xrange(keys.messages)

    assert migrate_session_layout(store, key) is True
    assert sync_client.hget(keys.session, "lv") == b"3"
    assert migrate_session_layout(store, key) is False
    rows = sync_client.xrange(keys.messages)
    assert [r[0] for r in rows] == [r[0] for r in old_rows]
    for (_, old), (_, new) in zip(old_rows, rows, strict=True):
        assert {k: v for k, v in old.items() if k != b"d"} == {
            k: v for k, v in new.items() if k != b"d"
        }
        assert msgpack.unpackb(new[b"d"], timestamp=3)[0] == 2
        assert len(new[b"d"]) < len(old[b"d"]) or old[b"d"] == new[b"d"]
    assert rows[3][1][b"d"] == old_rows[3][1][b"d"]  # already an array: untouched
    assert store.messages.history(key) == before
    again = io.StringIO()
    export_jsonl(store, again, keys=[key])
    assert again.getvalue() == exported.getvalue()


def test_migration_of_an_empty_or_unknown_session(
    backend: str, sync_client: redis.Redis, namespace: str, make_session: SessionFactory
) -> None:
    store = ConversationStore(sync_client, namespace=namespace)
    key = store.sessions.save(make_session("empty"))
    keys = store.config.keyspace.session(key)
    assert sync_client.hget(keys.session, "lv") == b"3"  # new sessions start in layout 3
    assert migrate_session_layout(store, key) is False
    sync_client.hdel(keys.session, "lv")
    assert migrate_session_layout(store, key) is True
    assert migrate_session_layout(store, "nobody") is False  # nothing there: marks nothing
    assert not sync_client.exists(store.config.keyspace.session("nobody").session)


def test_migration_gives_up_after_five_raced_attempts() -> None:
    """Appends between the plan's read and its script make it read again, then give up."""
    steps = plan(StoreConfig(KeySpace("ns"), Retention()), "k")
    step = next(steps)
    with pytest.raises(StaleAppend) as info:
        for attempt in range(5):
            assert isinstance(step, Call) and step.args[0] == "HMGET"
            step = steps.send([None, f"{attempt}-0".encode()])
            assert isinstance(step, Call) and step.args[0] == "XRANGE"
            step = steps.send([])
            assert isinstance(step, Run) and step.script is MIGRATE_LAYOUT
            step = steps.send([-5, f"{attempt + 1}-0".encode()])
    assert (info.value.expected, info.value.actual) == ("4-0", "5-0")
