"""store.messages on fakeredis and the real server, through the sync and the async store.

As in test_store_sessions.py, each scenario is one async test over ``st`` (sync or async store
on the same backend); ``aw`` awaits when needed. Raw Redis is inspected with ``sync_client``.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import fakeredis
import msgpack
import pytest
import redis

from conftest import (
    SessionFactory,
    Store,
    StoreFactory,
    aw,
    new_namespace,
)
from convstore import (
    AgentCommunicationMessage,
    AsyncConversationStore,
    ConversationStore,
    codec,
    utc_now,
)
from convstore.errors import CodecError, SessionNotFound, ValidationError


@pytest.fixture
def st(factory: StoreFactory) -> Store:
    return factory()


async def new_session(st: Store, make_session: SessionFactory, sid: str = "s") -> str:
    key: str = await aw(st.sessions.save(make_session(sid)))
    return key


def msg(content: str, role: str = "user", **extra: Any) -> dict[str, Any]:
    return {"role": role, "content": content, **extra}


async def contents(st: Store, key: str, **kwargs: Any) -> list[str]:
    return [m["content"] for m in await aw(st.messages.history(key, **kwargs))]


def agent_message(
    key: str,
    content: str,
    message_type: str = "communication",
    sender: str = "agent_a",
    timestamp: datetime | None = None,
    **metadata: Any,
) -> AgentCommunicationMessage:
    return AgentCommunicationMessage(
        message_id="",
        session_key=key,
        sender_id=sender,
        sender_type="agent",
        sender_role="writer",
        recipient_id="mc_1",
        recipient_type="master_controller",
        recipient_role=None,
        content=content,
        message_type=message_type,
        timestamp=timestamp or utc_now(),
        metadata=metadata,
    )


# --------------------------------------------------------------------------- volume and order


async def test_20000_message_session_reads_completely_and_in_order(
    st: Store, make_session: SessionFactory
) -> None:
    key = await new_session(st, make_session)
    total, batch = 20_000, 1_000
    for start in range(0, total, batch):
        results = await aw(
            st.messages.append_many(key, [msg(f"m{i:05d}") for i in range(start, start + batch)])
        )
        assert all(r.created for r in results)
    assert await aw(st.messages.count(key)) == total
    history = await aw(st.messages.history(key))
    assert [m["content"] for m in history] == [f"m{i:05d}" for i in range(total)]
    assert len({m["metadata"]["message_id"] for m in history}) == total
    assert all(set(m) == {"role", "content", "timestamp", "metadata"} for m in history)
    stamps = [m["timestamp"] for m in history]
    assert stamps == sorted(stamps)
    assert [m["content"] for m in await aw(st.messages.last(key, 20))] == [
        f"m{i:05d}" for i in range(total - 20, total)
    ]


async def test_newest_n(st: Store, make_session: SessionFactory) -> None:
    key = await new_session(st, make_session)
    await aw(st.messages.append_many(key, [msg(str(i)) for i in range(50)]))
    expected = [str(i) for i in range(50)]
    for n in (1, 7, 49, 50, 51, 1000):
        assert await contents(st, key, limit=n) == expected[-n:]
        assert [m["content"] for m in await aw(st.messages.last(key, n))] == expected[-n:]
    assert (await aw(st.messages.history(key, 3))) == (await aw(st.messages.history(key)))[-3:]
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValidationError):
            await aw(st.messages.history(key, limit=bad))


async def test_paging_10000_messages_without_gaps_or_repeats(
    st: Store, make_session: SessionFactory
) -> None:
    key = await new_session(st, make_session)
    total = 10_000
    for start in range(0, total, 2_500):
        await aw(st.messages.append_many(key, [msg(str(i)) for i in range(start, start + 2_500)]))
    pages: list[list[str]] = []
    cursor = None
    while True:
        page = await aw(st.messages.page(key, before=cursor, limit=333))
        pages.append([m["content"] for m in page.items])
        cursor = page.cursor
        if cursor is None:
            break
    assert len(pages) == -(-total // 333)
    assert all(len(p) == 333 for p in pages[:-1])
    assert len(pages[-1]) == total % 333
    walked = [c for p in reversed(pages) for c in p]
    assert walked == [str(i) for i in range(total)]


async def test_page_boundaries(st: Store, make_session: SessionFactory) -> None:
    key = await new_session(st, make_session)
    empty = await aw(st.messages.page(key))
    assert (empty.items, empty.cursor) == ([], None)
    await aw(st.messages.append_many(key, [msg(str(i)) for i in range(10)]))
    first = await aw(st.messages.page(key, limit=5))
    assert [m["content"] for m in first.items] == ["5", "6", "7", "8", "9"]
    second = await aw(st.messages.page(key, before=first.cursor, limit=5))
    assert [m["content"] for m in second.items] == ["0", "1", "2", "3", "4"]
    assert second.cursor is None  # exactly used up: no empty page to fetch
    whole = await aw(st.messages.page(key, limit=10))
    assert len(whole.items) == 10 and whole.cursor is None
    with pytest.raises(ValidationError):
        await aw(st.messages.page(key, limit=0))


@pytest.mark.parametrize("cursor", ["garbage", "(1-0", "1-", "-1-0", "1-0-0", "", 5])
async def test_page_rejects_a_bad_cursor(
    st: Store, make_session: SessionFactory, cursor: Any
) -> None:
    key = await new_session(st, make_session)
    await aw(st.messages.append(key, msg("x")))
    with pytest.raises(ValidationError):
        await aw(st.messages.page(key, before=cursor))


async def test_out_of_order_timestamps_keep_append_order(
    st: Store, make_session: SessionFactory
) -> None:
    key = await new_session(st, make_session)
    t = datetime(2024, 1, 1, tzinfo=UTC)
    stamps = [t, t - timedelta(hours=1), t, datetime(1900, 1, 1, tzinfo=UTC), t + timedelta(days=1)]
    results = await aw(
        st.messages.append_many(key, [msg(str(i), timestamp=s) for i, s in enumerate(stamps)])
    )
    history = await aw(st.messages.history(key))
    assert [m["content"] for m in history] == ["0", "1", "2", "3", "4"]
    assert [m["timestamp"] for m in history] == [s.isoformat() for s in stamps]
    entry_ids = [tuple(map(int, r.entry_id.split("-"))) for r in results]
    assert entry_ids == sorted(entry_ids) and len(set(entry_ids)) == 5
    assert await contents(st, key, since=t + timedelta(hours=12)) == ["4"]


async def test_history_by_time_range(st: Store, make_session: SessionFactory) -> None:
    key = await new_session(st, make_session)
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    stamps = [t0 + timedelta(minutes=i) for i in range(10)]
    await aw(st.messages.append_many(key, [msg(str(i), timestamp=t) for i, t in enumerate(stamps)]))
    window = await aw(st.messages.history(key, since=stamps[3], until=stamps[6]))
    assert [m["content"] for m in window] == ["3", "4", "5", "6"]
    assert [m["timestamp"] for m in window] == [t.isoformat() for t in stamps[3:7]]
    assert await contents(st, key, since=stamps[7]) == ["7", "8", "9"]
    assert await contents(st, key, until=stamps[1]) == ["0", "1"]
    assert await contents(st, key, limit=2, since=stamps[3], until=stamps[6]) == ["5", "6"]
    # ISO strings, naive datetimes (labelled UTC) and other zones mean the same instants
    assert await contents(
        st, key, since=stamps[3].isoformat(), until=stamps[4].replace(tzinfo=None)
    ) == ["3", "4"]
    plus2 = timezone(timedelta(hours=2))
    assert await contents(st, key, since=stamps[8].astimezone(plus2)) == ["8", "9"]
    assert await contents(st, key, since=t0 + timedelta(hours=1)) == []
    assert await contents(st, key, until=t0 - timedelta(hours=1)) == []
    with pytest.raises(ValidationError):
        await aw(st.messages.history(key, since="not a date"))


async def test_read_is_history_as_typed_values(st: Store, make_session: SessionFactory) -> None:
    """``messages.read`` returns what ``history`` returns, as StoredMessage values: the
    same messages in the same order, for every selection history takes."""
    key = await new_session(st, make_session)
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    stamps = [t0 + timedelta(minutes=i, microseconds=i * 7) for i in range(8)]
    calls = [{"id": "c1", "type": "function"}]
    sent = [msg(str(i), timestamp=t, metadata={"i": i}) for i, t in enumerate(stamps)]
    sent[2]["metadata"] = {"tool_calls": calls, "message_id": "chosen-id"}  # tool fields, text id
    sent[3] = msg("3", role="tool", timestamp=stamps[3], metadata={"tool_call_id": "c1"})
    results = await aw(st.messages.append_many(key, sent))
    for selection in (
        {},
        {"limit": 3},
        {"since": stamps[2], "until": stamps[5]},
        {"limit": 2, "since": stamps[1], "until": stamps[6]},
        {"since": stamps[7] + timedelta(seconds=1)},
    ):
        typed = await aw(st.messages.read(key, **selection))
        assert [m.as_dict() for m in typed] == await aw(st.messages.history(key, **selection))
        assert typed.skipped == ()
    typed = await aw(st.messages.read(key))
    assert [m.message_id for m in typed] == [r.message_id for r in results]
    assert typed[2].message_id == "chosen-id" and "message_id" not in typed[2].metadata
    assert [m.timestamp for m in typed] == stamps
    assert all(m.timestamp.tzinfo is UTC for m in typed)
    assert (typed[0].role, typed[0].content, typed[0].metadata) == ("user", "0", {"i": 0})
    assert typed[3].role == "tool" and typed[2].metadata["tool_calls"] == calls


# --------------------------------------------------------------------------- isolation


async def test_two_sessions_never_see_each_others_messages(
    st: Store, make_session: SessionFactory
) -> None:
    a = await new_session(st, make_session, "a")
    b = await new_session(st, make_session, "b")
    for i in range(20):
        await aw(st.messages.append(a if i % 3 else b, msg(f"{'a' if i % 3 else 'b'}{i}")))
    shared = "same-id-in-both"
    assert (
        await aw(st.messages.append(a, msg("a-shared", metadata={"message_id": shared})))
    ).created
    assert (
        await aw(st.messages.append(b, msg("b-shared", metadata={"message_id": shared})))
    ).created
    history_a, history_b = await contents(st, a), await contents(st, b)
    assert all(c.startswith("a") for c in history_a) and len(history_a) == 14
    assert all(c.startswith("b") for c in history_b) and len(history_b) == 8
    assert await aw(st.messages.count(a)) == 14
    assert await aw(st.messages.count(b)) == 8
    page = await aw(st.messages.page(b, limit=100))
    assert [m["content"] for m in page.items] == history_b


async def test_clear_leaves_other_sessions_untouched(
    st: Store, make_session: SessionFactory, sync_client: redis.Redis
) -> None:
    a = await new_session(st, make_session, "a")
    b = await new_session(st, make_session, "b")
    await aw(
        st.messages.append_many(
            a, [msg(f"a{i}", metadata={"message_id": f"id{i}"}) for i in range(5)]
        )
    )
    await aw(
        st.messages.append_many(
            b, [msg(f"b{i}", metadata={"message_id": f"id{i}"}) for i in range(3)]
        )
    )
    b_before = await aw(st.messages.history(b))

    assert await aw(st.messages.clear(a)) == 5
    assert await aw(st.messages.history(a)) == []
    assert await aw(st.messages.count(a)) == 0
    assert await aw(st.sessions.exists(a))
    assert await aw(st.messages.history(b)) == b_before
    assert await aw(st.messages.count(b)) == 3
    # the history starts again; cleared ids are free again, b's ids still are not
    again = await aw(st.messages.append(a, msg("again", metadata={"message_id": "id0"})))
    assert again.created
    assert not (await aw(st.messages.append(b, msg("dup", metadata={"message_id": "id0"})))).created
    assert await contents(st, a) == ["again"]
    assert await aw(st.messages.clear(a)) == 1
    assert await aw(st.messages.clear(a)) == 0
    with pytest.raises(SessionNotFound):
        await aw(st.messages.clear("nobody"))
    assert sync_client.exists(st.config.keyspace.session("nobody").session) == 0


async def test_delete_message_keeps_order_and_ttl(
    factory: StoreFactory, make_session: SessionFactory, sync_client: redis.Redis
) -> None:
    st = factory(ttl=60)
    key = await new_session(st, make_session)
    results = await aw(st.messages.append_many(key, [msg(str(i)) for i in range(5)]))
    keys = st.config.keyspace.session(key)

    assert await aw(st.messages.delete_message(key, results[2].message_id)) is True
    assert await contents(st, key) == ["0", "1", "3", "4"]
    assert await aw(st.messages.count(key)) == 4
    for name in (keys.session, keys.messages, keys.ids):
        assert 0 < sync_client.pttl(name) <= 60_000
    assert await aw(st.messages.delete_message(key, results[2].message_id)) is False
    assert await aw(st.messages.delete_message(key, "no-such-id")) is False
    assert await aw(st.messages.delete_message(key, results[4].message_id)) is True
    assert await contents(st, key) == ["0", "1", "3"]
    assert [m["content"] for m in await aw(st.messages.last(key, 2))] == ["1", "3"]
    later = await aw(st.messages.append(key, msg("5")))
    assert later.entry_id > results[4].entry_id  # ids never go backwards after a delete
    assert await contents(st, key) == ["0", "1", "3", "5"]
    with pytest.raises(SessionNotFound):
        await aw(st.messages.delete_message("nobody", "x"))
    with pytest.raises(ValidationError):
        await aw(st.messages.delete_message(key, ""))


# --------------------------------------------------------------------------- round trips


async def test_roles_tool_calls_and_routing_fields_round_trip(
    st: Store, make_session: SessionFactory
) -> None:
    key = await new_session(st, make_session)
    t = datetime(2024, 6, 1, 9, 30, 1, 123456, tzinfo=UTC)
    tool_calls = [
        {
            "id": "call_abc",
            "type": "function",
            "function": {"name": "search", "arguments": '{"q": "redis streams", "k": 5}'},
        },
        {"id": "call_def", "type": "function", "function": {"name": "noop", "arguments": "{}"}},
    ]
    given = [
        msg("Hi", "user", timestamp=t, metadata={"message_id": "m1"}),
        msg(
            "",
            "assistant",
            timestamp=t + timedelta(seconds=1),
            metadata={"message_id": "m2", "tool_calls": tool_calls, "finish_reason": None},
        ),
        msg(
            '{"results": [1, 2]}',
            "tool",
            timestamp=t + timedelta(seconds=2),
            metadata={"message_id": "m3", "tool_call_id": "call_abc", "name": "search"},
        ),
        msg(
            "Draft ready ✍️ 日本語",
            "agent_writer",
            timestamp=t + timedelta(seconds=3),
            metadata={
                "message_id": "m4",
                "nested": {"a": [1, -2, 3.5, True, False, None, {"b": ["c"]}]},
                "big": 2**63 - 1,
                "blob": b"\x00\xff",
                "when": t,
            },
        ),
    ]
    await aw(st.messages.append_many(key, given))
    expected = [{**m, "timestamp": m["timestamp"].isoformat()} for m in given]
    assert await aw(st.messages.history(key)) == expected

    # an AgentCommunicationMessage keeps its routing fields and its metadata
    plus2 = timezone(timedelta(hours=2))
    sent = agent_message(
        key,
        "Task done",
        "result_report",
        timestamp=datetime(2024, 6, 1, 12, 0, tzinfo=plus2),
        tool_calls=tool_calls,
        score=0.75,
    )
    sent.recipient_role = None
    result = await aw(st.messages.append(key, sent))
    assert result.message_id == sent.message_id and result.created
    assert (await aw(st.messages.last(key, 1)))[0] == sent.to_conversation_message_dict()
    (back,) = await aw(st.messages.agent_messages(key))
    assert back == sent
    assert back.to_dict() == sent.to_dict()
    assert back.timestamp.utcoffset() == timedelta(0)
    assert (back.sender_id, back.sender_role, back.recipient_id, back.recipient_type) == (
        "agent_a",
        "writer",
        "mc_1",
        "master_controller",
    )
    assert back.metadata == {"tool_calls": tool_calls, "score": 0.75}


async def test_every_message_gets_a_message_id(st: Store, make_session: SessionFactory) -> None:
    key = await new_session(st, make_session)
    results = [
        await aw(st.messages.append(key, msg("no metadata"))),
        await aw(st.messages.append(key, msg("empty", metadata={}))),
        await aw(st.messages.append(key, msg("other", metadata={"k": 1}))),
        await aw(st.messages.append(key, msg("blank id", metadata={"message_id": ""}))),
        await aw(st.messages.append(key, msg("given", metadata={"message_id": "mine"}))),
        *await aw(st.messages.append_many(key, [msg("batch"), msg("batch")])),
    ]
    history = await aw(st.messages.history(key))
    ids = [m["metadata"]["message_id"] for m in history]
    assert ids == [r.message_id for r in results]
    assert len(set(ids)) == len(ids)
    assert ids[4] == "mine"
    for generated in ids[:4] + ids[5:]:
        uuid.UUID(generated)
    assert history[2]["metadata"] == {"k": 1, "message_id": ids[2]}
    assert all(r.created for r in results)


async def test_retried_appends_never_duplicate(st: Store, make_session: SessionFactory) -> None:
    key = await new_session(st, make_session)
    first = await aw(st.messages.append(key, msg("original", metadata={"message_id": "r1"})))
    retry = await aw(st.messages.append(key, msg("changed", metadata={"message_id": "r1"})))
    assert first.created and not retry.created
    assert (retry.message_id, retry.entry_id) == ("r1", first.entry_id)

    results = await aw(
        st.messages.append_many(
            key,
            [
                msg("again", metadata={"message_id": "r1"}),  # already stored
                msg("new", metadata={"message_id": "r2"}),
                msg("twice in one batch", metadata={"message_id": "r2"}),
                msg("also new", metadata={"message_id": "r3"}),
            ],
        )
    )
    assert [r.created for r in results] == [False, True, False, True]
    assert results[0].entry_id == first.entry_id
    assert results[2].entry_id == results[1].entry_id
    # a whole batch retried writes nothing
    retried = await aw(
        st.messages.append_many(
            key, [msg("x", metadata={"message_id": m}) for m in ("r1", "r2", "r3")]
        )
    )
    assert [r.created for r in retried] == [False, False, False]
    assert [r.entry_id for r in retried] == [
        first.entry_id,
        results[1].entry_id,
        results[3].entry_id,
    ]
    assert await contents(st, key) == ["original", "new", "also new"]
    assert await aw(st.messages.count(key)) == 3

    agent = agent_message(key, "once")
    assert (await aw(st.messages.append(key, agent))).created
    assert not (await aw(st.messages.append(key, agent))).created
    assert await aw(st.messages.count(key)) == 4


# --------------------------------------------------------------------------- concurrency


@pytest.fixture
def thread_client_factory(
    backend_url: str | None, fake_server: fakeredis.FakeServer
) -> Iterator[Callable[[], redis.Redis]]:
    made: list[redis.Redis] = []

    def make() -> redis.Redis:
        client: redis.Redis = (
            fakeredis.FakeRedis(server=fake_server)
            if backend_url is None
            else redis.Redis.from_url(backend_url)
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def test_concurrent_threads_lose_nothing(
    store: ConversationStore,
    make_session: SessionFactory,
    namespace: str,
    thread_client_factory: Callable[[], redis.Redis],
) -> None:
    key = store.sessions.save(make_session())
    threads, per_thread = 8, 250
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            own = ConversationStore(thread_client_factory(), namespace=namespace)
            barrier.wait()
            for i in range(per_thread):
                mid = f"t{t}-{i}"
                own.messages.append(key, msg(mid, metadata={"message_id": mid}))
                if i % 25 == 0:  # a retry now and then must not duplicate
                    assert not own.messages.append(
                        key, msg(mid, metadata={"message_id": mid})
                    ).created
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert store.messages.count(key) == threads * per_thread
    history = store.messages.history(key)
    seen = [m["content"] for m in history]
    assert len(seen) == len(set(seen)) == threads * per_thread
    for t in range(threads):  # each writer's messages in its own order
        assert [c for c in seen if c.startswith(f"t{t}-")] == [
            f"t{t}-{i}" for i in range(per_thread)
        ]
    assert all(m["metadata"]["message_id"] == m["content"] for m in history)


async def test_concurrent_asyncio_tasks_lose_nothing(
    astore: AsyncConversationStore, make_session: SessionFactory
) -> None:
    key = await astore.sessions.save(make_session())
    tasks, per_task = 32, 50

    async def work(t: int) -> None:
        for i in range(per_task):
            await astore.messages.append(key, msg(f"t{t}-{i}"))

    await asyncio.gather(*(work(t) for t in range(tasks)))
    assert await astore.messages.count(key) == tasks * per_task
    seen = [m["content"] for m in await astore.messages.history(key)]
    assert len(set(seen)) == tasks * per_task
    for t in range(tasks):
        assert [c for c in seen if c.startswith(f"t{t}-")] == [f"t{t}-{i}" for i in range(per_task)]


# --------------------------------------------------------------------------- unknown and empty


async def test_unknown_session_raises_and_creates_nothing(
    st: Store, sync_client: redis.Redis
) -> None:
    keys = st.config.keyspace.session("ghost")
    with pytest.raises(SessionNotFound) as caught:
        await aw(st.messages.append("ghost", msg("boo")))
    assert caught.value.session_key == "ghost"
    with pytest.raises(SessionNotFound):
        await aw(st.messages.append_many("ghost", [msg("a"), msg("b")]))
    with pytest.raises(SessionNotFound):
        await aw(st.messages.append("ghost", agent_message("ghost", "boo")))
    assert sync_client.exists(*keys.all()) == 0
    for read in (
        lambda: st.messages.history("ghost"),
        lambda: st.messages.history("ghost", 5),
        lambda: st.messages.history("ghost", since=utc_now()),
        lambda: st.messages.read("ghost"),
        lambda: st.messages.read("ghost", 5),
        lambda: st.messages.last("ghost", 3),
        lambda: st.messages.count("ghost"),
        lambda: st.messages.page("ghost"),
        lambda: st.messages.agent_messages("ghost"),
        lambda: st.messages.clear("ghost"),
        lambda: st.messages.delete_message("ghost", "x"),
    ):
        with pytest.raises(SessionNotFound):
            await aw(read())
    assert sync_client.exists(*keys.all()) == 0


async def test_empty_existing_session_reads_as_empty(
    st: Store, make_session: SessionFactory
) -> None:
    key = await new_session(st, make_session)
    assert await aw(st.messages.history(key)) == []
    assert await aw(st.messages.history(key, 10)) == []
    assert await aw(st.messages.read(key)) == []
    assert await aw(st.messages.read(key, 10)) == []
    assert await aw(st.messages.last(key, 5)) == []
    assert await aw(st.messages.count(key)) == 0
    assert tuple(await aw(st.messages.page(key))) == ([], None)
    assert await aw(st.messages.agent_messages(key, limit=3)) == []
    assert await aw(st.messages.append_many(key, [])) == []
    assert await aw(st.messages.count(key)) == 0


# --------------------------------------------------------------------------- bad input


BAD_MESSAGES = [
    pytest.param(msg("x", extra=1), ValidationError, id="extra-key"),
    pytest.param({"role": "user", "content": 5}, ValidationError, id="int-content"),
    pytest.param({"role": "user", "content": None}, ValidationError, id="none-content"),
    pytest.param({"role": "user", "content": b"bytes"}, ValidationError, id="bytes-content"),
    pytest.param({"content": "x"}, ValidationError, id="no-role"),
    pytest.param(msg("x", ""), ValidationError, id="empty-role"),
    pytest.param({"role": 1, "content": "x"}, ValidationError, id="int-role"),
    pytest.param(msg("x", metadata={"tags": {"a", "b"}}), CodecError, id="set-in-metadata"),
    pytest.param(msg("x", metadata={1: "a"}), CodecError, id="int-key-in-metadata"),
    pytest.param(msg("x", metadata={"n": 2**64}), CodecError, id="huge-int"),
    pytest.param(msg("x", metadata=["a"]), ValidationError, id="list-metadata"),
    pytest.param(msg("x", metadata={"message_id": 7}), ValidationError, id="int-message-id"),
    pytest.param(msg("x", timestamp="yesterday"), ValidationError, id="bad-timestamp"),
    pytest.param("just text", ValidationError, id="str"),
    pytest.param(None, ValidationError, id="none"),
]


@pytest.mark.parametrize(("bad", "error"), BAD_MESSAGES)
async def test_bad_input_writes_nothing(
    st: Store,
    make_session: SessionFactory,
    sync_client: redis.Redis,
    bad: Any,
    error: type[Exception],
) -> None:
    key = await new_session(st, make_session)
    await aw(st.messages.append_many(key, [msg("one"), msg("two")]))
    session_before = await aw(st.sessions.get(key))
    stream = st.config.keyspace.session(key).messages

    with pytest.raises(error):
        await aw(st.messages.append(key, bad))
    good = msg("good", metadata={"message_id": "good-1"})
    with pytest.raises(error):
        await aw(st.messages.append_many(key, [good, bad, msg("after")]))

    assert await aw(st.messages.count(key)) == 2
    assert sync_client.xlen(stream) == 2
    assert await contents(st, key) == ["one", "two"]
    after = await aw(st.sessions.get(key))
    assert after.last_activity == session_before.last_activity
    assert (await aw(st.messages.append(key, good))).created  # the good one was not half-written


async def test_agent_message_for_another_session_writes_nothing(
    st: Store, make_session: SessionFactory
) -> None:
    key = await new_session(st, make_session, "mine")
    other = await new_session(st, make_session, "theirs")
    wrong = agent_message(other, "misrouted")
    with pytest.raises(ValidationError) as caught:
        await aw(st.messages.append(key, wrong))
    assert caught.value.field == "session_key"
    with pytest.raises(ValidationError):
        await aw(st.messages.append_many(key, [agent_message(key, "fine"), wrong]))
    wrong.metadata["bad"] = {1, 2}
    with pytest.raises((CodecError, ValidationError)):
        await aw(st.messages.append(other, wrong))
    assert await aw(st.messages.count(key)) == 0
    assert await aw(st.messages.count(other)) == 0


# --------------------------------------------------------------------------- agent messages


async def test_agent_messages_filter_before_the_limit(
    st: Store, make_session: SessionFactory
) -> None:
    key = await new_session(st, make_session)
    t0 = utc_now() - timedelta(hours=1)
    sent: list[AgentCommunicationMessage] = []
    batch: list[Any] = []
    for i in range(100):
        kind = "result_report" if i % 10 == 9 else "task_assignment"
        sender = "agent_b" if i % 3 == 0 else "agent_a"
        sent.append(agent_message(key, f"{kind}-{i}", kind, sender, t0 + timedelta(seconds=i)))
        batch.append(sent[-1])
        batch.append(msg(f"plain-{i}", timestamp=t0 + timedelta(seconds=i)))  # not an agent message
    await aw(st.messages.append_many(key, batch))
    reports = [m for m in sent if m.message_type == "result_report"]

    got = await aw(st.messages.agent_messages(key, message_types=["result_report"], limit=3))
    assert got == reports[-3:]
    assert [m.content for m in got] == ["result_report-79", "result_report-89", "result_report-99"]
    assert await aw(st.messages.agent_messages(key, ["result_report"])) == reports
    assert await aw(st.messages.agent_messages(key)) == sent
    assert await aw(st.messages.agent_messages(key, limit=2)) == sent[-2:]
    from_b = [m for m in sent if m.sender_id == "agent_b"]
    assert await aw(st.messages.agent_messages(key, sender_id="agent_b", limit=4)) == from_b[-4:]
    both = [m for m in reports if m.sender_id == "agent_b"]
    assert [m.content for m in both] == [f"result_report-{i}" for i in (9, 39, 69, 99)]
    assert (
        await aw(st.messages.agent_messages(key, ["result_report"], "agent_b", limit=3))
        == (both[-3:])
    )
    assert (
        await aw(st.messages.agent_messages(key, ["result_report", "task_assignment"], limit=1))
        == sent[-1:]
    )
    assert await aw(st.messages.agent_messages(key, ["feedback"], limit=3)) == []
    assert await aw(st.messages.agent_messages(key, sender_id="nobody")) == []
    with pytest.raises(ValidationError):
        await aw(st.messages.agent_messages(key, ["not_a_type"]))
    with pytest.raises(ValidationError):
        await aw(st.messages.agent_messages(key, limit=0))


async def test_agent_messages_filter_reaches_past_many_chunks(
    st: Store, make_session: SessionFactory
) -> None:
    key = await new_session(st, make_session)
    rare = [agent_message(key, f"rare-{i}", "error_report", "agent_z") for i in range(3)]
    filler = [agent_message(key, f"fill-{i}", "status_update") for i in range(1_300)]
    await aw(st.messages.append_many(key, [*rare, *filler]))
    assert await aw(st.messages.agent_messages(key, ["error_report"], limit=2)) == rare[-2:]
    assert await aw(st.messages.agent_messages(key, sender_id="agent_z")) == rare
    assert len(await aw(st.messages.agent_messages(key, ["status_update"]))) == 1_300


async def test_agent_messages_skip_plain_messages_with_some_routing_keys(
    st: Store, make_session: SessionFactory
) -> None:
    key = await new_session(st, make_session)
    real = agent_message(key, "real", sender="bob")
    await aw(
        st.messages.append_many(
            key,
            [
                msg("lone sender", metadata={"sender_id": "bob"}),
                msg("half", metadata={"sender_id": "bob", "sender_type": "agent"}),
                real,
            ],
        )
    )
    assert await aw(st.messages.agent_messages(key)) == [real]
    assert await aw(st.messages.agent_messages(key, sender_id="bob", limit=1)) == [real]
    assert await contents(st, key) == ["lone sender", "half", "real"]


# --------------------------------------------------------------------------- retention


async def test_max_messages_keeps_the_newest(
    factory: StoreFactory, make_session: SessionFactory
) -> None:
    st = factory(max_messages=5)
    key = await new_session(st, make_session)
    for i in range(3):
        await aw(st.messages.append(key, msg(str(i))))
    await aw(st.messages.append_many(key, [msg(str(i)) for i in range(3, 12)]))
    assert await contents(st, key) == ["7", "8", "9", "10", "11"]
    assert await aw(st.messages.count(key)) == 5
    await aw(st.messages.append(key, msg("12")))
    assert await contents(st, key) == ["8", "9", "10", "11", "12"]


async def test_the_message_past_the_cap_is_kept(
    factory: StoreFactory, make_session: SessionFactory
) -> None:
    st = factory(max_messages=1_000)
    key = await new_session(st, make_session)
    await aw(st.messages.append_many(key, [msg(str(i)) for i in range(1_000)]))
    newest = await aw(st.messages.append(key, msg("1000")))
    assert newest.created
    assert await aw(st.messages.count(key)) == 1_000
    assert [m["content"] for m in await aw(st.messages.last(key, 1))] == ["1000"]
    history = await contents(st, key)
    assert history[0] == "1" and history[-1] == "1000"
    other = await new_session(st, make_session, "one-batch")
    await aw(st.messages.append_many(other, [msg(str(i)) for i in range(1_001)]))
    assert await contents(st, other, limit=2) == ["999", "1000"]
    assert await aw(st.messages.count(other)) == 1_000


async def test_max_age_drops_old_messages_but_keeps_the_newest(
    factory: StoreFactory, make_session: SessionFactory
) -> None:
    st = factory(max_age=timedelta(hours=1))
    key = await new_session(st, make_session)
    old = utc_now() - timedelta(hours=3)
    await aw(
        st.messages.append_many(
            key, [msg(f"old{i}", timestamp=old + timedelta(seconds=i)) for i in range(5)]
        )
    )
    assert await contents(st, key) == ["old4"]  # everything is old: the newest still stays
    await aw(st.messages.append_many(key, [msg("fresh1"), msg("fresh2")]))
    assert await contents(st, key) == ["fresh1", "fresh2"]
    assert await aw(st.messages.count(key)) == 2
    # with the default (no max age) nothing is dropped
    plain = factory()
    kept = await new_session(plain, make_session, "kept")
    await aw(plain.messages.append_many(kept, [msg("ancient", timestamp=old), msg("now")]))
    assert await contents(plain, kept) == ["ancient", "now"]


# --------------------------------------------------------------------------- storage shape


@pytest.fixture
def real_client(real_url: str) -> Iterator[redis.Redis]:
    """A client on each real server only (this test inspects Redis itself)."""
    client = redis.Redis.from_url(real_url)
    yield client
    client.close()


def test_real_server_stores_a_hash_and_a_stream_of_msgpack(
    real_client: redis.Redis, make_session: SessionFactory
) -> None:
    ns = new_namespace()
    store = ConversationStore(real_client, namespace=ns)
    try:
        session = make_session("shape", "mc_to_agent", roles=("writer",), topic="storage")
        key = store.sessions.save(session)
        sent = agent_message(key, "report", "result_report", tool_calls=[{"id": "c1"}])
        store.messages.append_many(key, [msg("hello", "user"), sent])
        keys = store.config.keyspace.session(key)
        assert real_client.type(keys.session) == b"hash"
        assert real_client.type(keys.messages) == b"stream"

        record = msgpack.unpackb(real_client.hget(keys.session, "rec"), timestamp=3)
        assert record["session_id"] == "shape"
        assert record["session_type"] == "mc_to_agent"
        assert record["metadata"] == {"topic": "storage"}
        assert [p["participant_id"] for p in record["participants"]] == ["mc_1", "agent_writer"]
        assert isinstance(record["created_at"], datetime)
        assert record["created_at"] == session.created_at

        rows = real_client.xrange(keys.messages)
        assert len(rows) == 2
        decoded = []
        for _entry_id, fields in rows:  # layout 2: m = stored id, d = payload, tc/tr tools
            message_id, payload = fields[b"m"], fields[b"d"]
            assert set(fields) <= {b"m", b"d", b"tc"}
            value = msgpack.unpackb(payload, timestamp=3)
            assert len(message_id) == 17 and message_id[0] == 0  # a uuid id, stored compact
            decoded.append((codec.decode_message_id(message_id), value))
        (_, first), (second_id, second) = decoded  # [version, role, content, time, metadata]
        assert first[:3] == [2, "user", "hello"]
        assert isinstance(first[3], datetime) and first[3].utcoffset() == timedelta(0)
        assert second_id == sent.message_id
        assert second[2] == "report"
        assert second[3] == sent.timestamp
        assert second[4]["tool_calls"] == [{"id": "c1"}]
        assert rows[1][1][b"tc"] == b"c1" and b"tc" not in rows[0][1]
        assert real_client.hget(keys.session, "lv") == b"3"
        assert second[4]["message_type"] == "result_report"
        assert second[4]["sender_id"] == "agent_a"
    finally:
        store.sessions.delete("shape_mc_to_writer")
        leftovers = list(real_client.scan_iter(match=f"{ns}:*"))
        if leftovers:
            real_client.delete(*leftovers)


async def test_append_many_takes_any_iterable_and_checks_the_session_when_empty(
    factory: StoreFactory, make_session: SessionFactory
) -> None:
    store = factory()
    key = await aw(store.sessions.save(make_session("iter")))
    results = await aw(
        store.messages.append_many(key, ({"role": "user", "content": str(n)} for n in range(3)))
    )
    assert [r.created for r in results] == [True, True, True]
    assert await aw(store.messages.append_many(key, [])) == []
    with pytest.raises(SessionNotFound):
        await aw(store.messages.append_many("no-such-session", []))
