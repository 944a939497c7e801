"""ConvstoreSessionService beyond ADK's vendored tests: atomic scoped state, stale sessions,
concurrent appends, idempotent retries, stream-served reads, paged listing."""

from __future__ import annotations

import asyncio

import pytest
import redis
from google.adk.errors._stale_session_error import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types

from convstore import AsyncConversationStore, StoredMessage
from convstore.adapters import adk
from convstore.adapters.adk import ConvstoreSessionService, session_key


def _event(text: str, delta: dict[str, object] | None = None, ts: float | None = None) -> Event:
    kw: dict[str, object] = {} if ts is None else {"timestamp": ts}
    return Event(
        invocation_id="inv",
        author="user",
        content=types.Content(role="user", parts=[types.Part(text=text)]),
        actions=EventActions(state_delta=delta or {}),
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def service(astore: AsyncConversationStore) -> ConvstoreSessionService:
    return ConvstoreSessionService(store=astore)


async def test_scoped_state_is_persisted_and_temp_never_is(
    service: ConvstoreSessionService, sync_client: redis.Redis, astore: AsyncConversationStore
) -> None:
    s = await service.create_session(app_name="a", user_id="u", state={"app:x": 1, "k": "v"})
    await service.append_event(
        s, _event("hi", {"app:y": 2, "user:z": [1, 2], "temp:t": "gone", "k": {"n": 1}})
    )
    assert s.state["temp:t"] == "gone"  # ADK 2.x: for the invocation, in memory only
    again = await service.get_session(app_name="a", user_id="u", session_id=s.id)
    assert again is not None
    assert again.state == {"k": {"n": 1}, "app:x": 1, "app:y": 2, "user:z": [1, 2]}
    assert again.events[0].actions.state_delta == {"app:y": 2, "user:z": [1, 2], "k": {"n": 1}}
    other = await service.create_session(app_name="a", user_id="u2")
    assert other.state == {"app:x": 1, "app:y": 2}
    assert await service.get_user_state(app_name="a", user_id="u") == {"z": [1, 2]}
    raw = b"".join(
        b"".join(sync_client.hkeys(k))
        for k in sync_client.scan_iter(match=f"{astore.namespace}:*")
        if sync_client.type(k) == b"hash"
    )
    assert b"temp" not in raw
    with pytest.raises(AlreadyExistsError):
        await service.create_session(app_name="a", user_id="u", session_id=s.id)


async def test_a_stale_session_object_gets_a_clear_error_and_loses_nothing(
    service: ConvstoreSessionService,
) -> None:
    s = await service.create_session(app_name="a", user_id="u", session_id="s")
    copy = await service.get_session(app_name="a", user_id="u", session_id="s")
    assert copy is not None
    await service.append_event(s, _event("first", {"n": 1}))
    with pytest.raises(StaleSessionError, match="Reload it"):
        await service.append_event(copy, _event("second", {"n": 2}))
    fresh = await service.get_session(app_name="a", user_id="u", session_id="s")
    assert fresh is not None and [e.content.parts[0].text for e in fresh.events] == ["first"]
    assert fresh.state == {"n": 1}
    await service.append_event(fresh, _event("second", {"n": 2}))  # reloaded: accepted
    assert (await service.get_session(app_name="a", user_id="u", session_id="s")).state == {"n": 2}


async def test_concurrent_appends_to_one_object_keep_every_event_once(
    service: ConvstoreSessionService,
) -> None:
    """Many writers with their own fresh objects: each either lands or gets StaleSessionError."""
    await service.create_session(app_name="a", user_id="u", session_id="c")
    landed = 0
    for _ in range(5):
        copies = [await service.get_session(app_name="a", user_id="u", session_id="c")
                  for _ in range(4)]  # fmt: skip
        results = await asyncio.gather(
            *(service.append_event(c, _event(f"e{i}")) for i, c in enumerate(copies) if c),
            return_exceptions=True,
        )
        assert all(isinstance(r, Event | StaleSessionError) for r in results)
        assert sum(isinstance(r, Event) for r in results) == 1
        landed += 1
    stored = await service.get_session(app_name="a", user_id="u", session_id="c")
    assert stored is not None and len(stored.events) == landed


async def test_a_retried_event_is_stored_once(service: ConvstoreSessionService) -> None:
    s = await service.create_session(app_name="a", user_id="u")
    event = _event("once", {"count": 1})
    await service.append_event(s, event)
    stale = await service.get_session(app_name="a", user_id="u", session_id=s.id)
    assert stale is not None
    stale._storage_update_marker = "0-0"  # a retry from before the first write's reply
    await service.append_event(stale, event)
    stored = await service.get_session(app_name="a", user_id="u", session_id=s.id)
    assert stored is not None and len(stored.events) == 1
    with pytest.raises(SessionNotFoundError):
        await service.append_event(
            s.model_copy(update={"id": "missing"}), _event("x")
        )


async def test_reads_are_served_by_the_stream(
    service: ConvstoreSessionService, astore: AsyncConversationStore
) -> None:
    s = await service.create_session(app_name="a", user_id="u")
    for i in range(1, 31):
        await service.append_event(s, _event(str(i), ts=float(i)))
    key = session_key("a", "u", s.id)
    calls: list[tuple[object, ...]] = []
    original = astore.messages.read

    async def spy(*args: object, **kw: object) -> list[StoredMessage]:
        calls.append((args, kw))
        return await original(*args, **kw)  # type: ignore[arg-type]

    astore.messages.read = spy  # type: ignore[method-assign]
    got = await service.get_session(
        app_name="a", user_id="u", session_id=s.id,
        config=GetSessionConfig(num_recent_events=3, after_timestamp=29.0),
    )  # fmt: skip
    assert got is not None and [e.timestamp for e in got.events] == [29.0, 30.0]
    assert calls == [((key, 3), {"since": calls[0][1]["since"]})]  # one bounded read
    none = await service.get_session(
        app_name="a", user_id="u", session_id=s.id, config=GetSessionConfig(num_recent_events=0)
    )
    assert none is not None and none.events == [] and len(calls) == 1


async def test_listing_pages_through_the_indexes(
    service: ConvstoreSessionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adk, "_PAGE", 2)
    for i in range(5):
        await service.create_session(app_name="app", user_id=f"u{i % 2}", session_id=f"s{i}")
    await service.create_session(app_name="other", user_id="u0", session_id="x")
    mine = await service.list_sessions(app_name="app", user_id="u0")
    assert [s.id for s in mine.sessions] == ["s0", "s2", "s4"]  # oldest first
    everyone = await service.list_sessions(app_name="app")
    assert sorted(s.id for s in everyone.sessions) == [f"s{i}" for i in range(5)]
    await service.delete_session(app_name="app", user_id="u0", session_id="s2")
    assert [s.id for s in (await service.list_sessions(app_name="app", user_id="u0")).sessions] == [
        "s0",
        "s4",
    ]
