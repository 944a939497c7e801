"""Importing a ContextEngine Redis (the reference's layout, written as it writes it)."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import fakeredis
import pytest
import redis.asyncio

from convstore import AsyncConversationStore, ConversationStore
from convstore.aiecs_import import import_aiecs
from convstore.cli import main as cli_main
from convstore.contextengine import ContextEngineStore
from servers import ServerProcess, start_server

BASE = datetime(2024, 3, 1, 12, 0, 0)


def _dumps(obj: Any) -> str:
    """The reference's json.dumps(cls=DateTimeEncoder): datetimes as naive isoformat()."""
    return json.dumps(obj, default=lambda o: o.isoformat())


@pytest.fixture(scope="module")
def source_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A private redis-server on a free loopback port for the reference's layout.

    The reference's keys are global (``sessions``, ``conversation:{id}``), so they never go
    into the shared server: no other database of it is touched, nothing there is assumed empty.
    """
    server = start_server(tmp_path_factory.mktemp("aiecs-source"))
    yield server
    server.stop()


@pytest.fixture
async def source(
    backend_url: str | None, request: pytest.FixtureRequest
) -> AsyncIterator[redis.asyncio.Redis]:
    """A ContextEngine database: a fresh FakeServer, or a private redis-server.

    The ids used below carry a random tag and only the keys this test wrote are deleted
    afterwards (the server is shared by the tests of this module).
    """
    if backend_url is None:
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
    else:
        server: ServerProcess = request.getfixturevalue("source_server")
        client = redis.asyncio.Redis.from_url(server.url, decode_responses=True)
    client.written = set()  # type: ignore[attr-defined]
    yield client
    written = client.written  # type: ignore[attr-defined]
    global_hashes = {"sessions", "task_contexts", "conversation_sessions"}
    for key in written - global_hashes:
        await client.delete(key)
    for key, fields in getattr(client, "fields", {}).items():
        await client.hdel(key, *fields)
    await client.aclose()


async def _hset(source: redis.asyncio.Redis, key: str, field: str, value: str) -> None:
    await source.hset(key, field, value)
    source.written.add(key)  # type: ignore[attr-defined]
    if not hasattr(source, "fields"):
        source.fields = {}  # type: ignore[attr-defined]
    source.fields.setdefault(key, set()).add(field)  # type: ignore[attr-defined]


async def write_reference_layout(source: redis.asyncio.Redis, tag: str) -> dict[str, Any]:
    """Write sessions, histories, agent conversations, task contexts, checkpoints the way
    ContextEngine 2.2.0 does (LPUSH newest first, JSON, naive timestamps)."""
    s1, s2 = f"s1-{tag}", f"s2-{tag}"
    for sid, user in ((s1, "alice"), (s2, "bob")):
        metrics = {
            "session_id": sid,
            "user_id": user,
            "created_at": BASE,
            "last_activity": BASE + timedelta(minutes=30),
            "request_count": 4,
            "error_count": 1,
            "total_processing_time": 2.5,
            "status": "active",
        }
        await _hset(source, "sessions", sid, _dumps(metrics))
        await _hset(
            source,
            "task_contexts",
            sid,
            _dumps({"user_id": user, "chat_id": sid, "metadata": {}, "context_history": []}),
        )
    expected: dict[str, list[str]] = {s1: [], s2: []}
    for i in range(30):
        message = {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": f"{s1} message {i}",
            "timestamp": BASE + timedelta(seconds=i),
            "metadata": {"i": i},
        }
        await source.lpush(f"conversation:{s1}", _dumps(message))
        expected[s1].append(message["content"])  # type: ignore[arg-type]
    # The same content twice in a row still gives two messages (positions differ).
    for _ in range(2):
        await source.lpush(
            f"conversation:{s2}",
            _dumps({"role": "user", "content": "same", "timestamp": BASE, "metadata": {}}),
        )
        expected[s2].append("same")
    source.written.update({f"conversation:{s1}", f"conversation:{s2}"})  # type: ignore[attr-defined]

    conv = {
        "session_id": s1,
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
        "created_at": BASE,
        "last_activity": BASE,
        "metadata": {},
    }
    key = f"{s1}_mc_to_writer"
    await _hset(source, "conversation_sessions", key, _dumps(conv))
    agent_message = {
        "role": "master_controller",
        "content": "write it",
        "timestamp": BASE,
        "metadata": {
            "message_id": str(uuid.uuid4()),
            "sender_id": "mc",
            "sender_type": "master_controller",
            "sender_role": None,
            "recipient_id": "w",
            "recipient_type": "agent",
            "recipient_role": "writer",
            "message_type": "task_assignment",
        },
    }
    await source.lpush(f"conversation:{key}", _dumps(agent_message))
    source.written.add(f"conversation:{key}")  # type: ignore[attr-defined]
    expected[key] = ["write it"]

    # A history with no session at all (the reference allows it): imported, as the adapter
    # keeps appends to sessions nobody created.
    ghost = f"conversation:ghost-{tag}"
    await source.lpush(
        ghost, _dumps({"role": "user", "content": "boo", "timestamp": BASE, "metadata": {}})
    )
    source.written.add(ghost)  # type: ignore[attr-defined]
    expected[f"ghost-{tag}"] = ["boo"]

    for cid, minute in (("c1", 1), ("c2", 2)):
        await _hset(
            source,
            f"checkpoints:{s1}",
            cid,
            _dumps(
                {
                    "checkpoint_id": cid,
                    "thread_id": s1,
                    "data": {"step": minute},
                    "metadata": {},
                    "created_at": BASE + timedelta(minutes=minute),
                }
            ),
        )
    await _hset(
        source,
        f"checkpoint_writes:{s1}",
        "c1:t1",
        _dumps(
            {
                "thread_id": s1,
                "checkpoint_id": "c1",
                "task_id": "t1",
                "writes": [["ch", 1]],
                "created_at": BASE,
            }
        ),
    )
    return {"s1": s1, "s2": s2, "agent_key": key, "expected": expected}


async def _snapshot(source: redis.asyncio.Redis) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(source.written):  # type: ignore[attr-defined]
        kind = await source.type(key)
        if kind == "list":
            out[key] = await source.lrange(key, 0, -1)
        elif kind == "hash":
            out[key] = await source.hgetall(key)
        out[key + "#ttl"] = await source.ttl(key)
    return out


async def _state(store: AsyncConversationStore, keys: list[str]) -> dict[str, Any]:
    return {k: await store.messages.history(k) for k in keys}


async def test_import_in_order_once_and_idempotent(
    source: redis.asyncio.Redis, astore: AsyncConversationStore
) -> None:
    tag = uuid.uuid4().hex[:8]
    layout = await write_reference_layout(source, tag)
    before = await _snapshot(source)
    out = io.StringIO()
    report = await import_aiecs(source, astore, progress=True, stream=out)
    assert "importing" in out.getvalue()
    assert await _snapshot(source) == before  # the source is never modified

    ce = ContextEngineStore(astore)
    for key, contents in layout["expected"].items():
        history = await ce.get_conversation_history(key, limit=0)
        assert [m["content"] for m in history] == contents
    history = await ce.get_conversation_history(layout["s1"], 0)
    assert history[0]["timestamp"] == BASE.isoformat()
    assert history[0]["metadata"]["i"] == 0
    assert report.imported["messages"] == 34
    assert report.imported["sessions"] == 2
    assert report.imported["conversation_sessions"] == 1
    assert report.imported["task_contexts"] == 2
    assert report.imported["checkpoints"] == 2
    assert report.imported["checkpoint_writes"] == 1
    assert not any(kind == "messages" for kind, _ in report.skipped)

    session = await ce.get_session(layout["s1"])
    assert session is not None
    assert (session["user_id"], session["request_count"], session["error_count"]) == ("alice", 4, 1)
    assert session["created_at"] == BASE.isoformat()
    assert session["last_activity"] == (BASE + timedelta(minutes=30)).isoformat()
    agent = await ce.get_agent_conversation_history(layout["agent_key"], 0, ["task_assignment"])
    assert [m["content"] for m in agent] == ["write it"]
    latest = await ce.get_checkpoint(layout["s1"])
    assert latest is not None and latest["checkpoint_id"] == "c2"
    assert latest["created_at"] == (BASE + timedelta(minutes=2)).isoformat()
    assert await ce.get_writes(layout["s1"], "c1") == [("ch", 1)]
    task = await ce.get_task_context(layout["s2"])
    assert task is not None and task["user_id"] == "bob"

    keys = list(layout["expected"])
    state = await _state(astore, keys)
    sessions_before = [await ce.get_session(layout[s]) for s in ("s1", "s2")]
    again = await import_aiecs(source, astore, progress=False)
    assert sum(again.imported.values()) == 0
    assert again.skipped[("messages", "already imported")] == 34
    assert again.skipped[("sessions", "already present")] == 2
    assert again.skipped[("checkpoints", "already present")] == 2
    assert await _state(astore, keys) == state
    assert [await ce.get_session(layout[s]) for s in ("s1", "s2")] == sessions_before
    assert "already imported" in again.summary()


async def test_reordered_list_is_reported_and_imported_as_stored(
    source: redis.asyncio.Redis, astore: AsyncConversationStore
) -> None:
    tag = uuid.uuid4().hex[:8]
    sid = f"comp-{tag}"
    await _hset(
        source,
        "sessions",
        sid,
        _dumps(
            {
                "session_id": sid,
                "user_id": "u",
                "created_at": BASE,
                "last_activity": BASE,
                "request_count": 0,
                "error_count": 0,
                "total_processing_time": 0.0,
                "status": "active",
            }
        ),
    )
    # Compression RPUSHes oldest first, then a later append LPUSHes: ['m2','m1','m0','m6'] on read.
    key = f"conversation:{sid}"
    for i in range(3):
        await source.rpush(
            key,
            _dumps(
                {
                    "role": "user",
                    "content": f"m{i}",
                    "timestamp": BASE + timedelta(seconds=i),
                    "metadata": {},
                }
            ),
        )
    await source.lpush(
        key,
        _dumps(
            {
                "role": "user",
                "content": "m6",
                "timestamp": BASE + timedelta(seconds=6),
                "metadata": {},
            }
        ),
    )
    source.written.add(key)  # type: ignore[attr-defined]
    report = await import_aiecs(source, astore, progress=False)
    assert any(key in w and "not in order" in w for w in report.warnings)
    history = await astore.messages.history(sid)
    assert [m["content"] for m in history] == ["m2", "m1", "m0", "m6"]
    assert report.imported["messages"] == 4


async def test_invalid_items_are_skipped_with_reasons(
    source: redis.asyncio.Redis, astore: AsyncConversationStore
) -> None:
    tag = uuid.uuid4().hex[:8]
    sid = f"bad-{tag}"
    await _hset(
        source,
        "sessions",
        sid,
        _dumps(
            {
                "session_id": sid,
                "user_id": "u",
                "created_at": BASE,
                "last_activity": BASE,
                "request_count": 0,
                "error_count": 0,
                "total_processing_time": 0.0,
                "status": "active",
            }
        ),
    )
    await _hset(source, "sessions", f"junk-{tag}", "{not json")
    key = f"conversation:{sid}"
    await source.lpush(key, "not json")
    await source.lpush(
        key, _dumps({"role": "user", "content": "ok", "timestamp": BASE, "metadata": {}})
    )
    await source.lpush(key, _dumps({"role": "user", "content": "x", "timestamp": BASE, "id": 3}))
    source.written.add(key)  # type: ignore[attr-defined]
    report = await import_aiecs(source, astore, progress=False)
    assert report.imported["messages"] == 1
    assert report.skipped[("messages", "not a JSON object")] == 1
    assert report.skipped[("messages", "unexpected keys ['id']")] == 1
    assert report.skipped[("sessions", "invalid SessionMetrics JSON")] == 1
    assert "not a JSON object" in report.summary()


def test_cli_import_aiecs(
    capsys: pytest.CaptureFixture[str], namespace: str, real_url: str, source_server: ServerProcess
) -> None:
    """The command takes URLs: a private server as the source, each real server as the target."""
    import redis as sync_redis

    src = sync_redis.Redis.from_url(source_server.url, decode_responses=True)
    tag = uuid.uuid4().hex[:8]
    sid = f"cli-{tag}"
    metrics = {
        "session_id": sid,
        "user_id": "u",
        "created_at": BASE.isoformat(),
        "last_activity": BASE.isoformat(),
        "request_count": 0,
        "error_count": 0,
        "total_processing_time": 0.0,
        "status": "active",
    }
    src.hset("sessions", sid, json.dumps(metrics))
    for i in range(3):
        src.lpush(
            f"conversation:{sid}",
            json.dumps(
                {
                    "role": "user",
                    "content": f"c{i}",
                    "timestamp": (BASE + timedelta(seconds=i)).isoformat(),
                    "metadata": {},
                }
            ),
        )
    target = sync_redis.Redis.from_url(real_url)
    try:
        code = cli_main(
            [
                "import-aiecs",
                source_server.url,
                "--target-url",
                real_url,
                "--namespace",
                namespace,
                "--no-progress",
            ]
        )
        assert code == 0
        printed = capsys.readouterr().out
        assert "  messages: 3" in printed and "  sessions: 1" in printed
        store = ConversationStore(target, namespace=namespace)
        assert [m["content"] for m in store.messages.history(sid)] == ["c0", "c1", "c2"]
    finally:
        src.hdel("sessions", sid)
        src.delete(f"conversation:{sid}")
        for key in target.scan_iter(match=f"{namespace}:*"):
            target.delete(key)
        src.close()
        target.close()
