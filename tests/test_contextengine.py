"""ContextEngineStore and PermanentBackend, on fakeredis and on the real server.

Each of the reference's defects (aiecs 2.2.0, ``shared/reference/aiecs-contextengine.md``
section 3) has a test here of the fixed behaviour.
"""

from __future__ import annotations

import asyncio
import sys
import types
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
import redis.asyncio.connection

from convstore import (
    AsyncConversationStore,
    CodecError,
    RetryPolicy,
    SessionNotFound,
    StoreUnavailable,
)
from convstore.contextengine import (
    ENGINE_ID,
    ContextEngineStore,
    PermanentBackend,
    register_with_aiecs,
)
from convstore.errors import SessionKeyConflict, ValidationError

SESSION_KEYS = {
    "session_id",
    "user_id",
    "created_at",
    "last_activity",
    "request_count",
    "error_count",
    "total_processing_time",
    "status",
}
MESSAGE_KEYS = {"role", "content", "timestamp", "metadata"}


@pytest.fixture
def ce(astore: AsyncConversationStore) -> ContextEngineStore:
    return ContextEngineStore(astore)


@pytest.fixture
def capped(async_client: redis.asyncio.Redis, namespace: str) -> ContextEngineStore:
    """Built from a client, so with the reference's defaults: 1000 messages, 24 h TTL."""
    return ContextEngineStore(client=async_client, namespace=namespace)


def naive(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is None, text
    return moment


# --------------------------------------------------------------------------- sessions


async def test_session_lifecycle(ce: ContextEngineStore) -> None:
    assert await ce.initialize() is True
    created = await ce.create_session("s1", "u1", {"channel": "web"})
    assert set(created) == SESSION_KEYS
    assert created["session_id"] == "s1" and created["user_id"] == "u1"
    assert created["status"] == "active" and created["request_count"] == 0
    assert created["total_processing_time"] == 0.0
    naive(created["created_at"])
    assert await ce.get_session("s1") == created

    assert await ce.update_session(
        "s1",
        {"status": "busy", "not_a_field": 1},
        increment_requests=True,
        add_processing_time=1.25,
        mark_error=True,
    )
    got = await ce.get_session("s1")
    assert got is not None and set(got) == SESSION_KEYS
    assert (got["status"], got["request_count"], got["error_count"]) == ("busy", 1, 1)
    assert got["total_processing_time"] == 1.25
    assert naive(got["last_activity"]) >= naive(created["last_activity"])

    assert await ce.end_session("s1") is True
    ended = await ce.get_session("s1")
    assert ended is not None and ended["status"] == "completed"
    assert await ce.end_session("s1", status="failed")
    assert (await ce.get_session("s1") or {})["status"] == "failed"


async def test_session_is_a_convstore_session(
    ce: ContextEngineStore, astore: AsyncConversationStore
) -> None:
    await ce.create_session("s1", "u1")
    session = await astore.sessions.get("s1")
    assert session is not None and session.session_type == "user_to_mc"
    assert [(p.participant_id, p.participant_type) for p in session.participants] == [
        ("u1", "user"),
        (ENGINE_ID, "master_controller"),
    ]
    page = await astore.sessions.list(participant_id="u1")
    assert [s.session_id for s in page.items] == ["s1"]


async def test_missing_sessions(ce: ContextEngineStore) -> None:
    assert await ce.get_session("ghost") is None
    assert await ce.update_session("ghost", {"status": "x"}) is False
    assert await ce.end_session("ghost") is False
    assert await ce.get_conversation_history("ghost") == []
    assert await ce.get_agent_conversation_history("ghost") == []
    # The reference's contract (aiecs's MemoryPlugin never calls create_session): an append
    # to a session nobody created is kept; get_session stays None until create_session.
    assert await ce.add_conversation_message("ghost", "user", "hi")
    assert await ce.get_session("ghost") is None
    assert [m["content"] for m in await ce.get_conversation_history("ghost")] == ["hi"]
    created = await ce.create_session("ghost", "u1")
    assert created["user_id"] == "u1"
    assert [m["content"] for m in await ce.get_conversation_history("ghost")] == ["hi"]


async def test_unsaved_session_stays_unknown_to_the_native_store(
    ce: ContextEngineStore, astore: AsyncConversationStore
) -> None:
    """Plain ConversationStore keeps raising SessionNotFound for a session never saved."""
    await ce.add_conversation_message("ghost", "user", "hi")
    assert await astore.sessions.get("ghost") is None
    assert not await astore.sessions.exists("ghost")
    with pytest.raises(SessionNotFound):
        await astore.messages.append("ghost", {"role": "user", "content": "native"})
    assert [m["content"] for m in await astore.messages.history("ghost")] == ["hi"]


async def test_create_session_again_resets_counters(ce: ContextEngineStore) -> None:
    await ce.create_session("s1", "u1")
    await ce.update_session("s1", increment_requests=True, mark_error=True)
    again = await ce.create_session("s1", "u2")
    assert (again["user_id"], again["request_count"], again["error_count"]) == ("u2", 0, 0)


async def test_update_session_user_and_created_at(ce: ContextEngineStore) -> None:
    await ce.create_session("s1", "u1")
    when = datetime(2024, 1, 2, 3, 4, 5)
    assert await ce.update_session("s1", {"user_id": "u9", "created_at": when})
    got = await ce.get_session("s1")
    assert got is not None and got["user_id"] == "u9"
    assert got["created_at"] == "2024-01-02T03:04:05"
    with pytest.raises(ValidationError):
        await ce.update_session("s1", {"session_id": "other"})
    with pytest.raises(ValidationError):
        await ce.update_session("s1", {"request_count": -1})


async def test_concurrent_updates_are_not_lost(ce: ContextEngineStore) -> None:
    """Reference defect 8: update_session was a read-modify-write that lost updates."""
    await ce.create_session("s1", "u1")
    await asyncio.gather(
        *(
            ce.update_session("s1", increment_requests=True, add_processing_time=0.5)
            for _ in range(40)
        )
    )
    got = await ce.get_session("s1")
    assert got is not None and got["request_count"] == 40
    assert got["total_processing_time"] == 20.0


async def test_create_session_conflicting_key_is_typed(ce: ContextEngineStore) -> None:
    key = await ce.create_conversation_session(
        "s",
        [{"id": "mc", "type": "master_controller"}, {"id": "w", "type": "agent", "role": "writer"}],
        "mc_to_agent",
    )
    assert key == "s_mc_to_writer"
    # The reference keeps SessionMetrics and conversation sessions apart: both may use a key.
    assert await ce.update_session(key, {"status": "x"}) is False  # no ContextEngine session yet
    created = await ce.create_session("s_mc_to_writer", "u1")
    assert created["user_id"] == "u1"
    record = await ce.store.sessions.get(key)
    assert record is not None and str(record.session_type) == "mc_to_agent"
    # a session key owned by a different conversation session is still a typed conflict
    with pytest.raises(SessionKeyConflict):
        await ce.create_conversation_session(
            "s_mc_to_writer",
            [{"id": "u", "type": "user"}, {"id": "mc", "type": "master_controller"}],
            "user_to_mc",
        )


# --------------------------------------------------------------------------- conversation


async def test_history_shape_and_order(ce: ContextEngineStore) -> None:
    await ce.create_session("s1", "u1")
    assert await ce.add_conversation_message("s1", "user", "hello", {"k": [1, 2]}) is True
    await ce.add_conversation_message("s1", "assistant", "hi")
    history = await ce.get_conversation_history("s1")
    assert [m["content"] for m in history] == ["hello", "hi"]
    for message in history:
        assert set(message) == MESSAGE_KEYS
        naive(message["timestamp"])
        assert isinstance(message["metadata"]["message_id"], str)
    assert history[0]["metadata"]["k"] == [1, 2]
    assert history[0]["role"] == "user"


async def test_every_history_read_is_the_reference_shape_of_the_stored_history(
    ce: ContextEngineStore, astore: AsyncConversationStore
) -> None:
    """The view (made in the read loop) and ``include_compacted`` return exactly
    ``reference_entry`` of the store's own history, as plain lists that survive a JSON
    round trip: metadata the adapter wrote, and metadata only the store can hold
    (datetimes, bytes, a -1, which the loop must walk)."""
    import json

    from convstore.plans.reference import reference_entry

    await ce.create_session("s1", "u1")
    await ce.add_conversation_message("s1", "user", "plain", {"k": [1, {"x": None}], "f": 0.5})
    at = datetime(2025, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    extra = {"at": at, "deep": [{"at": at}], "blob": b"\x01\xff", "n": -1}
    await astore.messages.append("s1", {"role": "tool", "content": "żółć", "metadata": extra})
    await ce.add_conversation_message("s1", "assistant", "x" * 255)
    expected = [reference_entry(e) for e in await astore.messages.history("s1")]
    assert expected[1]["metadata"]["at"] == at.isoformat()
    assert expected[1]["metadata"]["blob"] == "Af8="
    for got in (
        await ce.get_conversation_history("s1", 0),
        await ce.get_conversation_history("s1", 0, include_compacted=True),
    ):
        assert type(got) is list and got == expected
        assert json.loads(json.dumps(got)) == got
    assert await ce.get_conversation_history("s1", 2) == expected[1:]
    assert await ce.get_conversation_history("s1", 2, include_compacted=True) == expected[1:]


async def test_limit_returns_the_newest(ce: ContextEngineStore) -> None:
    """Reference defect 1: limit=N returned the N oldest messages."""
    await ce.create_session("s1", "u1")
    for i in range(5):
        await ce.add_conversation_message("s1", "user", f"msg{i}")
    assert [m["content"] for m in await ce.get_conversation_history("s1", limit=2)] == [
        "msg3",
        "msg4",
    ]
    assert len(await ce.get_conversation_history("s1", limit=0)) == 5
    with pytest.raises(ValidationError):
        await ce.get_conversation_history("s1", limit=-1)


async def test_the_1001st_message_is_kept(capped: ContextEngineStore) -> None:
    """Reference defect 2: LTRIM kept the oldest 1000 and dropped every new message."""
    await capped.create_session("s1", "u1")
    for i in range(1001):
        await capped.add_conversation_message("s1", "user", f"msg{i}")
    history = await capped.get_conversation_history("s1", limit=0)
    assert len(history) == 1000
    assert history[-1]["content"] == "msg1000"
    assert history[0]["content"] == "msg1"


async def test_bad_metadata_raises_and_writes_nothing(ce: ContextEngineStore) -> None:
    """Reference defect 6: a set in metadata silently went to process memory (split brain)."""
    await ce.create_session("s1", "u1")
    await ce.add_conversation_message("s1", "user", "a")
    before = await ce.get_session("s1")
    with pytest.raises(CodecError):
        await ce.add_conversation_message("s1", "user", "b", {"tags": {"x"}})
    await ce.add_conversation_message("s1", "user", "c")
    assert [m["content"] for m in await ce.get_conversation_history("s1", 0)] == ["a", "c"]
    with pytest.raises(CodecError):
        await ce.store_checkpoint("s1", "c1", {"s": object()})
    assert await ce.get_checkpoint("s1", "c1") is None
    with pytest.raises(CodecError):
        await ce.create_session("s2", "u1", {"bad": object()})
    assert await ce.get_session("s2") is None
    assert before is not None


async def test_agent_messages_and_filter_before_limit(ce: ContextEngineStore) -> None:
    key = await ce.create_conversation_session(
        "s1",
        [
            {"participant_id": "mc", "participant_type": "master_controller"},
            {"participant_id": "w", "participant_type": "agent", "participant_role": "writer"},
        ],
        "mc_to_agent",
    )
    assert key == "s1_mc_to_writer"
    await ce.add_agent_communication_message(
        key, "mc", "master_controller", None, "w", "agent", "writer", "task 1", "task_assignment"
    )
    for i in range(5):
        await ce.add_agent_communication_message(
            key,
            "w",
            "agent",
            "writer",
            "mc",
            "master_controller",
            None,
            f"status {i}",
            "status_update",
            {"n": i},
        )
    # Reference defect 14: the filter ran after the limit, so this returned [].
    found = await ce.get_agent_conversation_history(key, limit=1, message_types=["task_assignment"])
    assert [m["content"] for m in found] == ["task 1"]
    newest = await ce.get_agent_conversation_history(key, limit=2)
    assert [m["content"] for m in newest] == ["status 3", "status 4"]
    message = newest[-1]
    assert set(message) == MESSAGE_KEYS
    assert message["role"] == "agent_writer"
    meta = message["metadata"]
    assert meta["n"] == 4 and meta["message_type"] == "status_update"
    assert (meta["sender_id"], meta["recipient_id"], meta["recipient_role"]) == ("w", "mc", None)
    assert await ce.get_agent_conversation_history(key, 0, ["feedback"]) == []
    assert len(await ce.get_agent_conversation_history(key, 0, ["status_update"])) == 5
    # Plain messages without message_type count as "communication", as in the reference.
    await ce.store.messages.append(key, {"role": "system", "content": "plain"})
    comms = await ce.get_agent_conversation_history(key, 10, ["communication"])
    assert [m["content"] for m in comms] == ["plain"]
    with pytest.raises(ValidationError):
        await ce.add_agent_communication_message(
            key, "w", "agent", "writer", "mc", "master_controller", None, "x", "no_such_type"
        )


async def test_agent_history_many_pages(ce: ContextEngineStore) -> None:
    key = await ce.create_conversation_session(
        "s",
        [{"id": "a", "type": "agent", "role": "x"}, {"id": "b", "type": "agent", "role": "y"}],
        "agent_to_agent",
    )
    await ce.add_agent_communication_message(
        key, "a", "agent", "x", "b", "agent", "y", "first", "feedback"
    )
    for i in range(450):
        await ce.store.messages.append(key, {"role": "system", "content": f"noise {i}"})
    found = await ce.get_agent_conversation_history(key, 5, ["feedback"])
    assert [m["content"] for m in found] == ["first"]


async def test_conversation_session_validation(ce: ContextEngineStore) -> None:
    with pytest.raises(ValidationError):
        await ce.create_conversation_session("s", [{"id": "u", "type": "user"}], "user_to_agent")
    with pytest.raises(ValidationError):
        await ce.create_conversation_session("s", [{"type": "user"}], "user_to_mc")
    with pytest.raises(ValidationError):
        await ce.create_conversation_session("s", [{"id": "u", "type": "user"}], "nope")


async def test_agent_message_to_a_session_never_created_is_kept(ce: ContextEngineStore) -> None:
    assert await ce.add_agent_communication_message(
        "x_mc_to_w", "mc", "master_controller", None, "w", "agent", "w", "hi"
    )
    found = await ce.get_agent_conversation_history("x_mc_to_w")
    assert [(m["content"], m["metadata"]["recipient_id"]) for m in found] == [("hi", "w")]


# --------------------------------------------------------------------------- checkpoints


async def test_checkpoints(ce: ContextEngineStore) -> None:
    assert await ce.get_checkpoint("t1") is None
    assert await ce.list_checkpoints("t1") == []
    assert await ce.store_checkpoint("t1", "c1", {"step": 1}, {"m": "x"}) is True
    assert await ce.put_checkpoint("t1", "c2", {"step": 2}) is True
    one = await ce.get_checkpoint("t1", "c1")
    assert one is not None
    assert set(one) == {"checkpoint_id", "thread_id", "data", "metadata", "created_at"}
    assert (one["data"], one["metadata"], one["thread_id"]) == ({"step": 1}, {"m": "x"}, "t1")
    naive(one["created_at"])
    latest = await ce.get_checkpoint("t1")
    assert latest is not None and latest["checkpoint_id"] == "c2"
    assert [c["checkpoint_id"] for c in await ce.list_checkpoints("t1")] == ["c2", "c1"]
    assert [c["checkpoint_id"] for c in await ce.list_checkpoints("t1", limit=1)] == ["c2"]
    assert await ce.get_checkpoint("t1", "missing") is None


async def test_writes(ce: ContextEngineStore) -> None:
    assert await ce.get_writes("t1", "c1") == []
    assert await ce.put_writes("t1", "c1", "task1", [("chan", 1), ("other", {"a": [1]})]) is True
    await ce.put_writes("t1", "c1", "task2", [("chan", 2)])
    await ce.put_writes("t1", "c2", "task1", [("chan", 3)])
    assert await ce.get_writes("t1", "c1") == [("chan", 1), ("other", {"a": [1]}), ("chan", 2)]
    assert await ce.get_writes("t1", "c2") == [("chan", 3)]
    # "a:b"+"c" and "a"+"b:c" would share the reference's field "a:b:c".
    await ce.put_writes("t2", "a:b", "c", [("x", 1)])
    await ce.put_writes("t2", "a", "b:c", [("y", 2)])
    assert await ce.get_writes("t2", "a:b") == [("x", 1)]
    assert await ce.get_writes("t2", "a") == [("y", 2)]


async def test_checkpoint_ttls(
    capped: ContextEngineStore, async_client: redis.asyncio.Redis
) -> None:
    await capped.store_checkpoint("thread-only", "c1", {})
    keys = capped.store.config.keyspace.session("thread-only")
    assert 604_000_000 < await async_client.pttl(keys.checkpoints) <= 604_800_000
    await capped.create_session("s1", "u1")
    await capped.store_checkpoint("s1", "c1", {})
    await capped.put_writes("s1", "c1", "t", [])
    skeys = capped.store.config.keyspace.session("s1")
    for key in (skeys.session, skeys.checkpoints, skeys.writes, skeys.task):
        assert 86_000_000 < await async_client.pttl(key) <= 86_400_000


# --------------------------------------------------------------------------- task context


async def test_task_context(
    ce: ContextEngineStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    await ce.create_session("s1", "u1", {"a": 1})
    assert await ce.get_task_context("s1") == {
        "user_id": "u1",
        "chat_id": "s1",
        "metadata": {"a": 1},
        "context_history": [],
        "file_tracker": {},
        "model_tracker": [],  # aiecs's TaskContext.to_dict() has a list here
    }
    # Reference defect 16: store_task_context always returned False.
    assert await ce.store_task_context("s1", {"user_id": "u1", "chat_id": "s1", "x": [1]}) is True
    assert await ce.get_task_context("s1") == {"user_id": "u1", "chat_id": "s1", "x": [1]}

    class Ctx:
        def to_dict(self) -> dict[str, Any]:
            return {"from": "object"}

    assert await ce.store_task_context("other", Ctx()) is True
    assert await ce.get_task_context("other") == {"from": "object"}
    assert await ce.get_task_context("none") is None
    with pytest.raises(ValidationError):
        await ce.store_task_context("s1", 42)
    # Reference defect 18: TaskContext created ./tasks/ in the working directory.
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- maintenance


async def test_cleanup_expired_sessions(
    ce: ContextEngineStore, astore: AsyncConversationStore
) -> None:
    await ce.create_session("old", "u1")
    await ce.add_conversation_message("old", "user", "bye")
    await ce.store_checkpoint("old", "c1", {})
    await ce.put_writes("old", "c1", "t", [("a", 1)])
    key = await ce.create_conversation_session(
        "old",
        [{"id": "mc", "type": "master_controller"}, {"id": "w", "type": "agent", "role": "w"}],
        "mc_to_agent",
    )
    await ce.create_session("new", "u1")
    long_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=30)  # naive, like aiecs
    assert await ce.update_session("old", {"last_activity": long_ago})
    await ce.restore_activity(key, str(int((long_ago.replace(tzinfo=UTC)).timestamp() * 1e6)))
    # A non-adapter session that is idle as well is not ours to delete.
    other = AsyncConversationStore(astore.client, namespace=astore.namespace)
    from convstore import ConversationParticipant, ConversationSession

    foreign = ConversationSession(
        "foreign",
        [ConversationParticipant("u", "user"), ConversationParticipant("m", "master_controller")],
        "user_to_mc",
        long_ago,
        long_ago,
    )
    await other.sessions.save(foreign)
    assert await ce.cleanup_expired_sessions(24) == 2
    assert await ce.get_session("old") is None
    assert await ce.get_conversation_history("old") == []
    assert await ce.get_checkpoint("old") is None
    assert await ce.get_writes("old", "c1") == []
    assert await ce.get_task_context("old") is None
    assert not await astore.sessions.exists(key)
    assert await ce.get_session("new") is not None
    assert await astore.sessions.exists("foreign")
    assert await ce.cleanup_expired_sessions(24) == 0


async def test_metrics_and_health(ce: ContextEngineStore) -> None:
    await ce.create_session("a", "u1")
    await ce.create_session("b", "u1")
    await ce.end_session("b")
    await ce.add_conversation_message("a", "user", "x")
    await ce.store_checkpoint("a", "c", {})
    metrics = await ce.get_metrics()
    assert set(metrics) == {
        "total_sessions",
        "active_sessions",
        "total_messages",
        "total_checkpoints",
        "storage_backend",
        "redis_connected",
        "timestamp",
    }
    assert (metrics["total_sessions"], metrics["active_sessions"]) == (2, 1)
    assert (metrics["total_messages"], metrics["total_checkpoints"]) == (1, 1)
    assert metrics["storage_backend"] == "redis" and metrics["redis_connected"] is True
    naive(metrics["timestamp"])
    health = await ce.health_check()
    assert health == {
        "status": "healthy",
        "storage_backend": "redis",
        "redis_connected": True,
        "issues": [],
    }


async def test_unreachable_redis_raises_instead_of_memory_fallback() -> None:
    ce = ContextEngineStore(
        url="redis://127.0.0.1:1/0", socket_connect_timeout=0.2, retry=RetryPolicy(deadline=0.3)
    )
    with pytest.raises(StoreUnavailable):
        await ce.initialize()
    with pytest.raises(StoreUnavailable):
        await ce.create_session("s", "u")
    with pytest.raises(StoreUnavailable):
        await ce.get_conversation_history("s")
    health = await ce.health_check()
    assert health["status"] == "degraded" and health["redis_connected"] is False
    assert health["issues"]
    metrics = await ce.get_metrics()
    assert metrics["redis_connected"] is False
    await ce.close()


# --------------------------------------------------------------------------- configuration


async def test_configuration_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_HOST", "redis.example")
    monkeypatch.setenv("REDIS_PORT", "6390")
    monkeypatch.setenv("REDIS_DB", "3")
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
    env = ContextEngineStore()
    kwargs = env.client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == (
        "redis.example",
        6390,
        3,
        "s3cret",
    )
    assert env.config.retention.max_messages == 1000 and env.conversation_limit == 1000
    await env.close()

    tls = ContextEngineStore(url="rediss://user:pw@cache.example:6380/2")
    pool = tls.client.connection_pool
    assert issubclass(pool.connection_class, redis.asyncio.connection.SSLConnection)
    assert (pool.connection_kwargs["username"], pool.connection_kwargs["password"]) == (
        "user",
        "pw",
    )
    assert pool.connection_kwargs["db"] == 2
    await tls.close()

    monkeypatch.setenv("REDIS_URL", "redis://from-url.example:7000/4")
    from_url = ContextEngineStore(namespace="ns1")
    assert from_url.client.connection_pool.connection_kwargs["host"] == "from-url.example"
    assert from_url.store.namespace == "ns1"
    await from_url.close()

    store = AsyncConversationStore.embedded()
    with pytest.raises(ValidationError):
        ContextEngineStore(store, url="redis://x")
    with pytest.raises(ValidationError):
        ContextEngineStore("redis://x")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ContextEngineStore(url="redis://x", checkpoint_ttl=-1)


async def test_close_leaves_a_passed_client_open(
    async_client: redis.asyncio.Redis, namespace: str
) -> None:
    ce = ContextEngineStore(client=async_client, namespace=namespace)
    await ce.initialize()
    await ce.close()
    assert await async_client.ping()


# --------------------------------------------------------------------------- compatibility


@dataclass
class ReferenceSessionMetrics:
    """aiecs 2.2.0 SessionMetrics, with its from_dict rule (section 2.2)."""

    session_id: str
    user_id: str
    created_at: datetime
    last_activity: datetime
    request_count: int = 0
    error_count: int = 0
    total_processing_time: float = 0.0
    status: str = "active"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceSessionMetrics:
        data = data.copy()
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        data["last_activity"] = datetime.fromisoformat(data["last_activity"])
        return cls(**data)


@dataclass
class ReferenceConversationMessage:
    """aiecs 2.2.0 ConversationMessage, with its from_dict rule (section 2.2)."""

    role: str
    content: str
    timestamp: datetime
    metadata: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceConversationMessage:
        data = data.copy()
        data["timestamp"] = datetime.fromisoformat(data["timestamp"])
        return cls(**data)


async def test_reference_parsers_load_our_dicts(ce: ContextEngineStore) -> None:
    created = await ce.create_session("s1", "u1")
    await ce.update_session("s1", increment_requests=True, add_processing_time=0.5)
    got = await ce.get_session("s1")
    assert got is not None
    for data in (created, got):
        metrics = ReferenceSessionMetrics.from_dict(data)
        assert metrics.created_at.tzinfo is None and metrics.last_activity.tzinfo is None
        # aiecs's cleanup compares with naive utcnow(): this must not raise.
        assert metrics.last_activity < datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=1)
    assert ReferenceSessionMetrics.from_dict(got).request_count == 1

    await ce.add_conversation_message("s1", "user", "hello", {"x": 1})
    key = await ce.create_conversation_session(
        "s1",
        [{"id": "mc", "type": "master_controller"}, {"id": "w", "type": "agent", "role": "w"}],
        "mc_to_agent",
    )
    await ce.add_agent_communication_message(
        key, "mc", "master_controller", None, "w", "agent", "w", "go"
    )
    messages = await ce.get_conversation_history("s1") + await ce.get_agent_conversation_history(
        key
    )
    loaded = [ReferenceConversationMessage.from_dict(m) for m in messages]
    assert [m.content for m in loaded] == ["hello", "go"]
    assert all(m.timestamp.tzinfo is None for m in loaded)
    assert loaded[1].metadata is not None and loaded[1].metadata["sender_id"] == "mc"
    for checkpoint in [await ce.store_checkpoint("s1", "c", {}) and await ce.get_checkpoint("s1")]:
        assert checkpoint is not None
        datetime.fromisoformat(checkpoint["created_at"])


def test_registers_with_aiecs_when_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("aiecs.core.interface.storage_interface")

    class IStorageBackend(ABC):
        @abstractmethod
        async def create_session(self, session_id: str, user_id: str) -> Any: ...

    class ICheckpointerBackend(ABC):
        @abstractmethod
        async def put_checkpoint(self, thread_id: str) -> Any: ...

    class IPermanentStorageBackend(ABC):
        @abstractmethod
        async def append_session_event(self, session_id: str) -> Any: ...

    module.IStorageBackend = IStorageBackend  # type: ignore[attr-defined]
    module.ICheckpointerBackend = ICheckpointerBackend  # type: ignore[attr-defined]
    module.IPermanentStorageBackend = IPermanentStorageBackend  # type: ignore[attr-defined]
    for name in ("aiecs", "aiecs.core", "aiecs.core.interface"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "aiecs.core.interface.storage_interface", module)
    sys.modules["aiecs.core.interface"].storage_interface = module  # type: ignore[attr-defined]
    assert not issubclass(ContextEngineStore, IStorageBackend)
    assert register_with_aiecs() is True
    assert issubclass(ContextEngineStore, IStorageBackend)
    assert issubclass(ContextEngineStore, ICheckpointerBackend)
    assert issubclass(PermanentBackend, IPermanentStorageBackend)
    assert isinstance(ContextEngineStore(AsyncConversationStore.embedded()), IStorageBackend)


def test_without_aiecs_registration_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiecs", None)  # makes "import aiecs..." raise ImportError
    assert register_with_aiecs() is False


# --------------------------------------------------------------------------- permanent backend


async def test_permanent_backend(astore: AsyncConversationStore) -> None:
    backend = PermanentBackend(astore)
    assert await backend.initialize() is True
    reader = ContextEngineStore(astore)
    payload = {
        "session_id": "s1",
        "user_id": "u1",
        "created_at": "2024-05-01T10:00:00",
        "last_activity": "2024-05-01T10:00:00",
        "request_count": 0,
        "error_count": 0,
        "total_processing_time": 0.0,
        "status": "active",
    }
    assert await backend.append_session_event("s1", "u1", "create", payload, "2024-05-01T10:00:00")
    assert await reader.get_session("s1") == payload
    updated = {**payload, "request_count": 3, "last_activity": "2024-05-01T11:00:00"}
    assert await backend.append_session_event("s1", "u1", "update", updated)
    assert await reader.get_session("s1") == updated
    ended = {**updated, "status": "completed"}
    assert await backend.append_session_event("s1", "u1", "end", ended)
    assert (await reader.get_session("s1") or {})["status"] == "completed"
    with pytest.raises(ValidationError):
        await backend.append_session_event("s1", "u1", "explode", payload)

    assert await backend.append_conversation_message(
        "s1", "user", "hi", {"message_id": "m1"}, "2024-05-01T10:01:00"
    )
    assert await backend.append_conversation_message("s1", "user", "hi", {"message_id": "m1"})
    history = await reader.get_conversation_history("s1")
    assert [(m["content"], m["timestamp"]) for m in history] == [("hi", "2024-05-01T10:01:00")]

    session_data = {
        "session_id": "s1",
        "participants": [
            {
                "participant_id": "mc",
                "participant_type": "master_controller",
                "participant_role": None,
                "metadata": {},
            },
            {
                "participant_id": "w",
                "participant_type": "agent",
                "participant_role": "writer",
                "metadata": {},
            },
        ],
        "session_type": "mc_to_agent",
        "created_at": "2024-05-01T10:00:00",
        "last_activity": "2024-05-01T10:00:00",
        "metadata": {},
    }
    assert await backend.append_conversation_session("s1_mc_to_writer", session_data)
    assert await astore.sessions.exists("s1_mc_to_writer")
    with pytest.raises(ValidationError):
        await backend.append_conversation_session("wrong_key", session_data)

    assert await backend.append_checkpoint("s1", "c1", {"a": 1}, {"m": 1}, "2024-05-01T10:02:00")
    checkpoint = await reader.get_checkpoint("s1", "c1")
    assert checkpoint is not None and checkpoint["created_at"] == "2024-05-01T10:02:00"
    assert await backend.append_checkpoint_writes("s1", "c1", "t1", [("ch", 1)])
    assert await reader.get_writes("s1", "c1") == [("ch", 1)]
    assert await backend.append_task_context_snapshot("s1", {"user_id": "u1"})
    assert await reader.get_task_context("s1") == {"user_id": "u1"}
    # like the reference, a message of a session nobody created is kept
    assert await backend.append_conversation_message("ghost", "user", "x")
    assert [m["content"] for m in await reader.get_conversation_history("ghost")] == ["x"]
    await backend.close()
    assert await astore.ping()  # the store passed in stays open


def test_to_json_is_the_references_json_round_trip() -> None:
    """``reference.to_json`` (its exact-type fast path and the general one) returns what the
    reference's ``json.dumps`` with its encoder, then ``json.loads``, returns."""
    import base64
    import enum
    import json
    from collections import OrderedDict

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from convstore.plans.reference import to_json

    class Kind(enum.StrEnum):
        A = "a"

    def encoder(value: Any) -> Any:  # the reference's JSON encoder, for what it stores
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, bytes):
            return base64.b64encode(value).decode("ascii")
        raise TypeError(type(value).__name__)

    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63),
        st.floats(allow_nan=False),
        st.text(max_size=5),
        st.binary(max_size=4),
        st.datetimes(timezones=st.sampled_from([UTC, None])),
        st.just(Kind.A),
    )
    keys = st.one_of(st.text(max_size=4), st.integers(-5, 5), st.just(Kind.A))
    values = st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.lists(inner, max_size=3).map(tuple),
            st.dictionaries(keys, inner, max_size=3),
            st.dictionaries(st.text(max_size=3), inner, max_size=3).map(OrderedDict),
        ),
        max_leaves=10,
    )

    @settings(max_examples=400, deadline=None)
    @given(values)
    def check(value: Any) -> None:
        try:
            expected = json.loads(json.dumps(value, default=encoder))
        except (TypeError, ValueError):  # keys JSON itself refuses: not a case to compare
            return
        assert to_json(value) == expected

    check()


def test_reference_entry_timestamps_are_naive_iso_without_parsing() -> None:
    """``reference_entry`` cuts the ``+00:00`` off the store's UTC ISO text instead of parsing it:
    the same text ``naive_iso`` makes of the moment, for any moment and any offset."""
    from datetime import timezone

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from convstore.isotime import utc_isoformat
    from convstore.plans.reference import naive_iso, reference_entry

    zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone.min])

    @settings(max_examples=300, deadline=None)
    @given(st.datetimes(min_value=datetime(2, 1, 1), timezones=zones))
    def check(moment: datetime) -> None:
        for stamp in (utc_isoformat(moment), moment.isoformat()):
            entry = {"role": "user", "content": "c", "timestamp": stamp, "metadata": {}}
            assert reference_entry(entry)["timestamp"] == naive_iso(moment)

    check()
