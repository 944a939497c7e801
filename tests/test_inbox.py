"""Inboxes: delivery to exactly the recipient, consumer groups, reclaim, dead letters, repair.

Every test runs on fakeredis, the real Redis and Valkey (the ``backend`` fixture).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis
import redis.asyncio

from conftest import SessionFactory
from convstore import (
    AgentCommunicationMessage,
    AsyncConversationStore,
    ConversationStore,
    InboxSettings,
    StoreUnavailable,
    ValidationError,
    utc_now,
)
from convstore.lua import inbox as lua_inbox

ROLES = {"mc_1": ("master_controller", None), "agent_writer": ("agent", "writer")}
ROLES["agent_researcher"] = ("agent", "researcher")


def agent_message(
    key: str, mid: str, sender: str, recipient: str, text: str
) -> AgentCommunicationMessage:
    s_type, s_role = ROLES[sender]
    r_type, r_role = ROLES[recipient]
    return AgentCommunicationMessage(
        mid, key, sender, s_type, s_role, recipient, r_type, r_role, text, "communication",
        utc_now(),
    )  # fmt: skip


@pytest.fixture
def istore(sync_client: redis.Redis, namespace: str) -> ConversationStore:
    return ConversationStore(sync_client, namespace=namespace, inboxes=True)


def new_session(store: ConversationStore, make_session: SessionFactory, sid: str = "s") -> str:
    return store.sessions.create(make_session(sid, "agent_to_agent"))


def drain(store: ConversationStore, recipient: str, **options: Any) -> list[Any]:
    options.setdefault("wait", 0.3)
    with store.inbox(recipient, **options) as box:
        return list(box)


def test_each_message_reaches_exactly_its_recipient(
    istore: ConversationStore, make_session: SessionFactory
) -> None:
    key = new_session(istore, make_session)
    sent = []
    for i in range(6):
        sender, recipient = ("agent_writer", "agent_researcher")[:: 1 if i % 2 else -1]
        msg = agent_message(key, f"m{i}", sender, recipient, f"text {i}")
        istore.messages.append(key, msg)
        sent.append(msg)
    istore.messages.append(key, sent[0])  # a client retry: never a second copy
    istore.messages.append(key, {"role": "user", "content": "a plain message goes nowhere"})
    for recipient in ("agent_writer", "agent_researcher"):
        got = drain(istore, recipient)
        assert [d.message for d in got] == [m for m in sent if m.recipient_id == recipient]
        assert all(d.session_key == key and d.ack() for d in got)
    assert drain(istore, "mc_1") == []


def test_delivery_is_off_unless_the_store_asks_for_it(
    sync_client: redis.Redis, namespace: str, make_session: SessionFactory
) -> None:
    plain = ConversationStore(sync_client, namespace=namespace)
    key = new_session(plain, make_session)
    plain.messages.append(key, agent_message(key, "m", "agent_writer", "agent_researcher", "hi"))
    assert drain(plain, "agent_researcher") == []
    assert plain.inboxes.deliver(key) == 1  # an explicit delivery still works
    assert [d.message.message_id for d in drain(plain, "agent_researcher")] == ["m"]


def test_a_dead_consumers_message_is_redelivered_and_the_old_owner_cannot_ack(
    istore: ConversationStore, make_session: SessionFactory
) -> None:
    key = new_session(istore, make_session)
    istore.messages.append(key, agent_message(key, "t1", "agent_writer", "agent_researcher", "x"))
    first = istore.inbox("agent_researcher", consumer="c1", batch=1, claim_idle=0.05, wait=1)
    taken = next(first)  # c1 read it and then "died": no ack
    time.sleep(0.12)
    second = drain(istore, "agent_researcher", consumer="c2", claim_idle=0.05)
    assert [d.message.message_id for d in second] == ["t1"]
    assert second[0].claimed and second[0].session_entry_id == taken.session_entry_id
    assert taken.ack() is False  # c1 is still running, but c2 owns it now
    assert second[0].ack() is True
    assert second[0].ack() is False  # acked already
    first.close()


def test_order_is_kept_per_session_and_sender(
    istore: ConversationStore, make_session: SessionFactory
) -> None:
    keys = [new_session(istore, make_session, f"s{i}") for i in range(2)]
    for i in range(20):
        key = keys[i % 2]
        sender = ("agent_writer", "mc_1")[i // 2 % 2]
        istore.messages.append(key, agent_message(key, f"m{i}", sender, "agent_researcher", str(i)))
    got = drain(istore, "agent_researcher", batch=3)
    assert len(got) == 20
    for key in keys:
        for sender in ("agent_writer", "mc_1"):
            mine = [d for d in got if d.session_key == key and d.message.sender_id == sender]
            assert [int(d.message.content) for d in mine] == sorted(
                int(d.message.content) for d in mine
            )
            ids = [tuple(map(int, d.session_entry_id.split("-"))) for d in mine]
            assert ids == sorted(ids)


def _fail_delivery(store: ConversationStore) -> list[int]:
    """Make every inbox delivery step fail as a dropped connection would (the append before
    it succeeds): the crash between the two steps. Returns a list counting the failures."""
    driver = store.driver
    real = driver._execute
    failures: list[int] = []

    def execute(step: Any) -> Any:
        if getattr(step, "script", None) is lua_inbox.INBOX_DELIVER:
            failures.append(1)
            raise redis.ConnectionError("injected: connection lost before the delivery")
        return real(step)

    driver._execute = execute  # type: ignore[method-assign]
    return failures


def crash_then_repair(store: ConversationStore, key: str) -> None:
    healthy = store.driver._execute
    failures = _fail_delivery(store)
    msg = agent_message(key, "lost", "agent_writer", "agent_researcher", "half delivered")
    with pytest.raises(StoreUnavailable):
        store.messages.append(key, msg)
    assert failures
    assert store.messages.agent_messages(key) == [msg]  # the append itself happened
    assert drain(store, "agent_researcher") == []  # but the inbox never got it
    store.driver._execute = healthy  # type: ignore[method-assign]
    assert store.inboxes.repair(older_than=0) == 1
    assert store.inboxes.repair(older_than=0) == 0  # the sweeper forgot the session
    got = drain(store, "agent_researcher")
    assert [d.message for d in got] == [msg]
    assert got[0].session_entry_id == _newest_entry_id(store, key)  # its original entry id


def _newest_entry_id(store: ConversationStore, key: str) -> str:
    rows = store.client.xrevrange(store.config.keyspace.session(key).messages, count=1)
    return str(rows[0][0].decode())


def test_a_crash_between_append_and_delivery_is_repaired_with_the_original_entry_id(
    sync_client: redis.Redis, namespace: str, make_session: SessionFactory
) -> None:
    store = ConversationStore(sync_client, namespace=namespace, inboxes=True, retry=None)
    crash_then_repair(store, new_session(store, make_session))


def test_the_next_append_delivers_what_a_crash_left_first(
    sync_client: redis.Redis, namespace: str, make_session: SessionFactory
) -> None:
    store = ConversationStore(sync_client, namespace=namespace, inboxes=True, retry=None)
    key = new_session(store, make_session)
    healthy = store.driver._execute
    _fail_delivery(store)
    with pytest.raises(StoreUnavailable):
        store.messages.append(key, agent_message(key, "a", "mc_1", "agent_researcher", "1"))
    store.driver._execute = healthy  # type: ignore[method-assign]
    store.messages.append(key, agent_message(key, "b", "mc_1", "agent_researcher", "2"))
    got = drain(store, "agent_researcher")
    assert [d.message.message_id for d in got] == ["a", "b"]
    ids = [tuple(map(int, d.session_entry_id.split("-"))) for d in got]
    assert ids == sorted(ids)


def test_dead_letter_after_max_deliveries(
    istore: ConversationStore, make_session: SessionFactory
) -> None:
    key = new_session(istore, make_session)
    istore.messages.append(key, agent_message(key, "poison", "mc_1", "agent_writer", "boom"))
    options = {"claim_idle": 0.05, "max_deliveries": 2, "batch": 1}
    for consumer in ("c1", "c2"):  # each takes it and "crashes"
        box = istore.inbox("agent_writer", consumer=consumer, wait=0.5, **options)
        assert next(box).message.message_id == "poison"
        box.close()
        time.sleep(0.12)
    assert drain(istore, "agent_writer", consumer="c3", **options) == []
    (dead,) = istore.inboxes.dead_letters("agent_writer")
    assert dead.reason == "max-deliveries: delivered 2 times without ack"
    assert (dead.group, dead.consumer, dead.deliveries) == ("workers", "c2", 2)
    assert dead.message is not None and dead.message.message_id == "poison"
    assert dead.session_key == key


def test_retention_dead_letters_pending_and_unread_entries_instead_of_dropping_them(
    sync_client: redis.Redis, namespace: str, make_session: SessionFactory
) -> None:
    settings = InboxSettings(deliver=True, retention=3)
    store = ConversationStore(sync_client, namespace=namespace, inboxes=settings)
    key = new_session(store, make_session)
    store.messages.append(key, agent_message(key, "m0", "mc_1", "agent_writer", "0"))
    box = store.inbox("agent_writer", consumer="slow", batch=1, wait=0.5)
    held = next(box)  # pending, never acked
    box.close()
    for i in range(1, 6):
        store.messages.append(key, agent_message(key, f"m{i}", "mc_1", "agent_writer", str(i)))
    inbox = store.config.keyspace.inbox("agent_writer")
    assert sync_client.xlen(inbox.stream) == 3
    dead = store.inboxes.dead_letters("agent_writer")
    assert [(d.message.message_id if d.message else None, d.reason) for d in dead] == [
        ("m0", "retention: pending past the inbox retention"),
        ("m1", "retention: never read, past the inbox retention"),
        ("m2", "retention: never read, past the inbox retention"),
    ]
    assert held.ack() is False
    rest = drain(store, "agent_writer", consumer="slow")
    assert [d.message.message_id for d in rest] == ["m3", "m4", "m5"]
    assert sync_client.hlen(inbox.ids) == 3  # the dedup index shrinks with the inbox


def test_an_undecodable_entry_goes_to_the_dead_letters(
    istore: ConversationStore, sync_client: redis.Redis
) -> None:
    stream = istore.config.keyspace.inbox("agent_writer").stream
    with istore.inbox("agent_writer", wait=0.2) as box:
        assert list(box) == []  # creates the group
        sync_client.xadd(stream, {"s": "k", "e": "1-0", "k": "x", "r": b"\xc1"})
        assert list(box) == []
    (dead,) = istore.inboxes.dead_letters("agent_writer")
    assert dead.reason.startswith("undecodable:") and dead.message is None


def test_reject_sends_a_message_to_the_dead_letters(
    istore: ConversationStore, make_session: SessionFactory
) -> None:
    key = new_session(istore, make_session)
    istore.messages.append(key, agent_message(key, "r", "mc_1", "agent_writer", "no"))
    (got,) = drain(istore, "agent_writer", consumer="c1")
    with pytest.raises(ValidationError):
        got.reject("")
    assert got.reject("cannot handle this task") is True
    assert got.ack() is False
    assert [d.reason for d in istore.inboxes.dead_letters("agent_writer")] == [
        "cannot handle this task"
    ]


def test_bad_consumer_options_are_refused(istore: ConversationStore) -> None:
    for options in ({"batch": 0}, {"claim_idle": -1}, {"group": ""}, {"max_deliveries": 0}):
        with pytest.raises(ValidationError):
            istore.inbox("agent_writer", **options)


async def test_async_inbox_delivers_acks_and_cancels_cleanly(
    async_client: redis.asyncio.Redis, namespace: str, make_session: SessionFactory
) -> None:
    store = AsyncConversationStore(async_client, namespace=namespace, inboxes=True)
    key = await store.sessions.create(make_session("s", "agent_to_agent"))
    received: list[str] = []

    async def worker() -> None:
        async for delivery in store.inbox("agent_writer", consumer="w1"):
            received.append(delivery.message.message_id)
            assert await delivery.ack()

    task = asyncio.create_task(worker())
    await asyncio.sleep(0.05)
    for i in range(5):
        await store.messages.append(key, agent_message(key, f"a{i}", "mc_1", "agent_writer", "x"))
    deadline = time.monotonic() + 5
    while len(received) < 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert received == [f"a{i}" for i in range(5)]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert await store.ping()  # the store's own connections are untouched


def test_status_counts_pending_acknowledged_and_dead_letters(
    istore: ConversationStore, make_session: SessionFactory
) -> None:
    key = new_session(istore, make_session)
    empty = istore.inboxes.status("agent_researcher")
    assert (empty.entries, empty.dead_letters, empty.groups) == (0, 0, ())
    for i in range(4):
        istore.messages.append(
            key, agent_message(key, f"s{i}", "agent_writer", "agent_researcher", f"{i}")
        )
    with istore.inbox("agent_researcher", consumer="c1", batch=1, wait=1) as box:
        first, second, third = next(box), next(box), next(box)
        assert first.ack() and second.ack()
        assert third.reject("not for me")  # settled through the dead letters
        status = istore.inboxes.status("agent_researcher")
        [group] = status.groups
        # 3 handed out (1 pending: the fourth is still unread), 3 settled, 1 not delivered
        assert (status.entries, status.dead_letters) == (4, 1)
        assert (group.name, group.consumers, group.delivered) == ("workers", 1, 3)
        assert (group.pending, group.acknowledged, group.lag) == (0, 3, 1)
        fourth = next(box)
        held = istore.inboxes.status("agent_researcher").groups[0]
        assert (held.delivered, held.pending, held.acknowledged, held.lag) == (4, 1, 3, 0)
        assert fourth.ack()
