"""ContextEngineStore as aiecs's consumers use it (issue 8): each bug here failed on the
adapter before it; live settings; the reference's JSON shapes; the layout migration."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from convstore import AsyncConversationStore, ConversationParticipant, ConversationSession
from convstore.contextengine import (
    ContextEngineStore,
    PermanentBackend,
    install_into_aiecs,
    install_permanent_backend_into_aiecs,
)
from convstore.errors import ConfigurationError, ValidationError
from convstore.plans import epoch_micros


@pytest.fixture
def ce(astore: AsyncConversationStore) -> ContextEngineStore:
    return ContextEngineStore(astore)


def _hash(ce: ContextEngineStore, key: str) -> str:
    return ce.config.keyspace.session(key).session


# --------------------------------------------------------------------------- bugs 1-5


async def test_bug1_conversation_session_keeps_the_context_engine_session(
    ce: ContextEngineStore,
) -> None:
    created = await ce.create_session("chat", "alice")
    key = await ce.create_conversation_session(
        "chat",
        [{"id": "bob", "type": "user"}, {"id": "mc", "type": "master_controller"}],
        "user_to_mc",
    )
    assert key == "chat"
    found = await ce.get_session("chat")
    assert found is not None
    assert found["user_id"] == "alice"
    assert found["created_at"] == created["created_at"]
    assert (await ce.get_metrics())["active_sessions"] == 1
    record = await ce.store.sessions.get("chat")  # the conversation session record is bob's
    assert record is not None
    assert [p.participant_id for p in record.participants] == ["bob", "mc"]


async def test_bug2_task_context_model_tracker_is_a_list(ce: ContextEngineStore) -> None:
    await ce.create_session("s", "u")
    context = await ce.get_task_context("s")
    assert context is not None and context["model_tracker"] == []


async def test_bug3_settings_set_after_construction_take_effect(
    ce: ContextEngineStore, astore: AsyncConversationStore
) -> None:
    ce.conversation_limit = 3
    ce.session_ttl = 60
    ce.checkpoint_ttl = 30
    await ce.create_session("s", "u")
    for i in range(6):
        await ce.add_conversation_message("s", "user", f"m{i}")
    assert [m["content"] for m in await ce.get_conversation_history("s", 0)] == ["m3", "m4", "m5"]
    assert await astore.messages.count("s") == 3
    ttl = await astore.client.pttl(_hash(ce, "s"))
    assert 0 < ttl <= 60_000
    await ce.store_checkpoint("thread-only", "c1", {"x": 1})
    ttl = await astore.client.pttl(ce.config.keyspace.session("thread-only").checkpoints)
    assert 0 < ttl <= 30_000
    ce.conversation_limit = None  # None: keep everything from now on
    for i in range(6, 10):
        await ce.add_conversation_message("s", "user", f"m{i}")
    assert await astore.messages.count("s") == 7
    with pytest.raises(ValidationError):
        ce.conversation_limit = 0
    with pytest.raises(ValidationError):
        ce.session_ttl = -1


async def test_bug4_permanent_backend_keeps_everything_forever(
    astore: AsyncConversationStore,
) -> None:
    backend = PermanentBackend(astore)
    assert (backend.engine.conversation_limit, backend.engine.session_ttl) == (None, None)
    assert backend.engine.checkpoint_ttl is None
    await backend.append_session_event("s", "u", "create", {"status": "active"})
    for i in range(1_100):
        await backend.append_conversation_message("s", "user", f"m{i}")
    await backend.append_checkpoint("s", "c1", {"x": 1})
    assert await astore.messages.count("s") == 1_100
    for name in ce_keys(backend.engine, "s"):
        assert await astore.client.pttl(name) in (-1, -2)  # no TTL (or never written)
    assert await astore.client.pttl(_hash(backend.engine, "s")) == -1


def ce_keys(ce: ContextEngineStore, key: str) -> tuple[str, ...]:
    return ce.config.keyspace.session(key).all()


async def test_bug5_agent_conversation_key_is_no_context_engine_session(
    ce: ContextEngineStore, astore: AsyncConversationStore
) -> None:
    key = await ce.create_conversation_session(
        "s",
        [{"id": "mc", "type": "master_controller"}, {"id": "w", "type": "agent", "role": "writer"}],
        "mc_to_agent",
    )
    assert await ce.get_session(key) is None
    assert await ce.update_session(key, {"status": "x"}, increment_requests=True) is False
    assert await ce.end_session(key) is False
    fields = await astore.client.hkeys(_hash(ce, key))
    assert not {b"ce:rq", b"ce:st", b"ce:uid"} & set(fields)


# --------------------------------------------------------------------------- JSON shapes


@dataclass
class Step:
    name: str
    tags: set[str]


async def test_results_are_json_shaped_like_the_reference(ce: ContextEngineStore) -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    await ce.create_session("s", "u")
    meta = {"at": moment, "raw": b"\x00\x01", "pair": (1, 2), "nested": {"when": [moment]}}
    await ce.add_conversation_message("s", "user", "hi", meta)
    [message] = await ce.get_conversation_history("s")
    assert isinstance(message["metadata"].pop("message_id"), str)
    assert message["metadata"] == {
        "at": "2024-01-02T03:04:05+00:00",
        "raw": "AAE=",  # base64: JSON has no bytes
        "pair": [1, 2],
        "nested": {"when": ["2024-01-02T03:04:05+00:00"]},
    }
    # dataclasses become dicts and sets lists on the way in, as the reference documents
    data = {"state": Step("plan", {"a"}), "seen": {"x"}, "at": moment}
    assert await ce.store_checkpoint("s", "c1", data, {"when": moment})
    checkpoint = await ce.get_checkpoint("s", "c1")
    assert checkpoint is not None
    assert checkpoint["data"] == {
        "state": {"name": "plan", "tags": ["a"]},
        "seen": ["x"],
        "at": "2024-01-02T03:04:05+00:00",
    }
    assert checkpoint["metadata"] == {"when": "2024-01-02T03:04:05+00:00"}
    assert await ce.store_task_context("s", {"history": [Step("t", set())], "at": moment})
    assert await ce.get_task_context("s") == {
        "history": [{"name": "t", "tags": []}],
        "at": "2024-01-02T03:04:05+00:00",
    }
    assert await ce.put_writes("s", "c1", "t1", [("channel", moment)])
    assert await ce.get_writes("s", "c1") == [("channel", "2024-01-02T03:04:05+00:00")]
    # everything the engine hands back survives json.dumps (aiecs's load_agent_state path)
    for value in (
        await ce.get_conversation_history("s"),
        await ce.list_checkpoints("s"),
        await ce.get_task_context("s"),
        await ce.get_session("s"),
        await ce.get_agent_conversation_history("s"),
    ):
        json.dumps(value)


async def test_naive_datetimes_stay_naive_as_in_the_reference(ce: ContextEngineStore) -> None:
    naive = datetime(2024, 5, 6, 7, 8, 9)
    await ce.add_conversation_message("s", "user", "hi", {"at": naive})
    await ce.store_checkpoint("s", "c1", {"at": naive})
    [message] = await ce.get_conversation_history("s")
    assert message["metadata"]["at"] == "2024-05-06T07:08:09"
    checkpoint = await ce.get_checkpoint("s", "c1")
    assert checkpoint is not None and checkpoint["data"] == {"at": "2024-05-06T07:08:09"}


async def test_native_store_keeps_typed_values(astore: AsyncConversationStore) -> None:
    """What the native API writes keeps its types; the adapter stores the reference's JSON."""
    moment = datetime(2024, 1, 2, tzinfo=UTC)
    await astore.sessions.save(
        ConversationSession(
            "s",
            [
                ConversationParticipant("u", "user"),
                ConversationParticipant("m", "master_controller"),
            ],
            "user_to_mc",
            moment,
            moment,
        )
    )
    await astore.messages.append(
        "s", {"role": "user", "content": "hi", "metadata": {"at": moment, "raw": b"x"}}
    )
    [entry] = await astore.messages.history("s")
    assert entry["metadata"]["at"] == moment and entry["metadata"]["raw"] == b"x"


# --------------------------------------------------------------------------- layout migration


async def test_layout_1_sessions_are_read_and_migrated(
    ce: ContextEngineStore, astore: AsyncConversationStore
) -> None:
    """Layout 1 marked a ContextEngine session ``ce = "session"`` and kept its user and
    creation time only in the record; it is still read, and migrate_layout moves it."""
    created = datetime(2024, 5, 1, tzinfo=UTC)
    record = ConversationSession(
        "old",
        [
            ConversationParticipant("alice", "user"),
            ConversationParticipant("context_engine", "master_controller"),
        ],
        "user_to_mc",
        created,
        created,
    )
    await astore.sessions.save(record)
    name = _hash(ce, "old")
    await astore.client.hset(name, mapping={"ce": "session", "ce:rq": 4, "ce:st": "active"})
    found = await ce.get_session("old")
    assert found is not None
    assert (found["user_id"], found["request_count"]) == ("alice", 4)
    assert found["created_at"] == "2024-05-01T00:00:00"
    assert await ce.migrate_layout() == 1
    assert await astore.client.hget(name, "ce:uid") == b"alice"
    assert await astore.client.hget(name, "ce:ca") == str(epoch_micros(created)).encode()
    assert await ce.get_session("old") == found
    assert await ce.migrate_layout() == 0  # idempotent
    # a conversation session written over it now leaves the metrics alone
    await ce.create_conversation_session(
        "old",
        [{"id": "bob", "type": "user"}, {"id": "mc", "type": "master_controller"}],
        "user_to_mc",
    )
    again = await ce.get_session("old")
    assert again is not None and again["user_id"] == "alice"


# --------------------------------------------------------------------------- install into aiecs


def _fake_aiecs(monkeypatch: pytest.MonkeyPatch) -> tuple[types.ModuleType, types.ModuleType]:
    client = types.ModuleType("aiecs.infrastructure.persistence.context_engine_client")
    client._global_context_engine = None  # type: ignore[attr-defined]
    client._initialized = False  # type: ignore[attr-defined]
    factory = types.ModuleType("aiecs.infrastructure.persistence.permanent_backend_factory")
    factory.create_permanent_backend = lambda: None  # type: ignore[attr-defined]
    for name in ("aiecs", "aiecs.infrastructure", "aiecs.infrastructure.persistence"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, client.__name__, client)
    monkeypatch.setitem(sys.modules, factory.__name__, factory)
    return client, factory


async def test_install_into_aiecs_sets_the_application_engine(
    monkeypatch: pytest.MonkeyPatch, astore: AsyncConversationStore
) -> None:
    client, factory = _fake_aiecs(monkeypatch)
    engine = install_into_aiecs(ContextEngineStore(astore))
    assert client._global_context_engine is engine  # type: ignore[attr-defined]
    assert client._initialized is True  # type: ignore[attr-defined]
    backend = install_permanent_backend_into_aiecs(PermanentBackend(astore))
    assert factory.create_permanent_backend() is backend  # type: ignore[attr-defined]


def test_install_without_aiecs_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiecs", None)
    with pytest.raises(ConfigurationError, match="aiecs is not importable"):
        install_into_aiecs(ContextEngineStore(AsyncConversationStore.embedded()))
