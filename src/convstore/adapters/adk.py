"""Google ADK session service (``convstore[adk]``): a ``BaseSessionService`` on the store.

One ADK session is one convstore session (key: app, user and id, percent-encoded and
joined with ``/``); each event is one message of its stream (message id = event id, so a
retried append writes nothing), the event itself kept as JSON in the metadata. Appending
runs the store's own APPEND script wrapped with the event's ``state_delta``: session keys,
``app:`` and ``user:`` scopes applied in the same script (``temp:`` never stored; on Redis
Cluster the app and user hashes live in other slots and are written right after it).

Reads are served by the stream: ``num_recent_events`` is one ``XREVRANGE … COUNT n`` and
``after_timestamp`` a range from that time, never every event. ``list_sessions`` pages
through the participant indexes. A session object remembers the stream id of the newest
event it saw; appending from a stale object raises ADK's ``StaleSessionError`` (nothing is
written), so no event or state change is ever lost.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from google.adk.errors._stale_session_error import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.sessions.base_session_service import (
    BaseSessionService,
    GetSessionConfig,
    ListSessionsResponse,
)
from google.adk.sessions.session import Session
from google.adk.sessions.state import State
from pydantic_core import to_jsonable_python

from convstore.errors import SessionExists, SessionNotFound
from convstore.models import ConversationParticipant, ConversationSession, utc_now
from convstore.plans import adk as plans
from convstore.plans import new_message_ids
from convstore.plans.steps import Plan
from convstore.store import AsyncConversationStore

__all__ = ["ConvstoreSessionService", "session_key"]

_PAGE = 200
_STALE = (
    "The session has been modified in storage since it was loaded (its newest stored event "
    "is {current}). Reload it with get_session() before appending more events."
)


def session_key(app_name: str, user_id: str, session_id: str) -> str:
    """The convstore session key of an ADK session (injective: each part percent-encoded)."""
    return "/".join(quote(p, safe="") for p in ("adk", app_name, user_id, session_id))


def _user_participant(app_name: str, user_id: str) -> str:
    return f"adk-user/{quote(app_name, safe='')}/{quote(user_id, safe='')}"


def _app_participant(app_name: str) -> str:
    return f"adk-app/{quote(app_name, safe='')}"


def _encode(value: Any) -> bytes:
    return json.dumps(to_jsonable_python(value), separators=(",", ":")).encode()


def _decode(raw: bytes) -> Any:
    return json.loads(raw)


def _pairs(state: dict[str, Any]) -> list[tuple[str, bytes]]:
    return [(k, _encode(v)) for k, v in state.items()]


def _split(state: dict[str, Any] | None) -> plans.StatePairs:
    """By scope, prefixes removed; ``temp:`` keys dropped (never persisted)."""
    app, user, own = {}, {}, {}
    for key, value in (state or {}).items():
        if key.startswith(State.APP_PREFIX):
            app[key.removeprefix(State.APP_PREFIX)] = value
        elif key.startswith(State.USER_PREFIX):
            user[key.removeprefix(State.USER_PREFIX)] = value
        elif not key.startswith(State.TEMP_PREFIX):
            own[key] = value
    return plans.StatePairs(_pairs(own), _pairs(app), _pairs(user))


class ConvstoreSessionService(BaseSessionService):
    """ADK sessions, events and scoped state in a convstore :class:`AsyncConversationStore`."""

    def __init__(self, *, store: AsyncConversationStore) -> None:
        self.store = store
        self._config = store.config

    async def _run(self, plan: Plan[Any]) -> Any:
        return await self.store.driver.run(plan)

    def _scope_keys(self, app_name: str, user_id: str) -> tuple[str, str]:
        ks = self._config.keyspace
        return ks.adk_app_state(app_name), ks.adk_user_state(app_name, user_id)

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        session_id = (session_id or "").strip() or new_message_ids(1)[0]
        now = utc_now()
        record = ConversationSession(
            session_key(app_name, user_id, session_id),
            [
                ConversationParticipant(_user_participant(app_name, user_id), "user"),
                ConversationParticipant(_app_participant(app_name), "master_controller"),
            ],
            "user_to_mc",
            now,
            now,
            {"adk_app": app_name, "adk_user": user_id, "adk_id": session_id},
        )
        last_update = now.timestamp()
        try:
            await self._run(
                plans.create(
                    self._config,
                    record,
                    *self._scope_keys(app_name, user_id),
                    _split(state),
                    repr(last_update),
                )
            )
        except SessionExists:
            raise AlreadyExistsError(f"Session with id {session_id} already exists.") from None
        session = await self.get_session(app_name=app_name, user_id=user_id, session_id=session_id)
        assert session is not None  # just created; deleted concurrently is a bug to surface
        return session

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        session_id = session_id.strip() if session_id else session_id
        key = session_key(app_name, user_id, session_id)
        stored = await self._run(
            plans.read(self._config, key, *self._scope_keys(app_name, user_id))
        )
        if stored is None:
            return None
        limit = config.num_recent_events if config else None
        after = config.after_timestamp if config else None
        events: list[Event] = []
        if limit != 0:
            since = None if after is None else datetime.fromtimestamp(after, UTC)
            try:
                rows = await self.store.messages.read(key, limit, since=since)
            except SessionNotFound:
                return None
            events = [Event.model_validate_json(r.metadata["adk_event"]) for r in rows]
            if after is not None:
                events = [e for e in events if e.timestamp >= after]
        return self._session(app_name, user_id, session_id, stored, events)

    def _session(
        self,
        app_name: str,
        user_id: str,
        session_id: str,
        stored: plans.Stored,
        events: list[Event],
    ) -> Session:
        state = {k: _decode(v) for k, v in stored.state.items()}
        for k, v in stored.app_state.items():
            state[State.APP_PREFIX + k.decode()] = _decode(v)
        for k, v in stored.user_state.items():
            state[State.USER_PREFIX + k.decode()] = _decode(v)
        session = Session(
            id=session_id,
            app_name=app_name,
            user_id=user_id,
            state=state,
            events=events,
            last_update_time=float(stored.fields.get(b"adk:lut", b"0")),
        )
        session._storage_update_marker = stored.newest
        return session

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        """Paged from the participant index (the user's, else the app's); oldest first."""
        participant = (
            _app_participant(app_name) if user_id is None else _user_participant(app_name, user_id)
        )
        found: list[Session] = []
        cursor: str | None = None
        while True:
            page = await self.store.sessions.list(participant, limit=_PAGE, cursor=cursor)
            for record in page.items:
                meta = record.metadata
                uid, sid = meta["adk_user"], meta["adk_id"]
                stored = await self._run(
                    plans.read(self._config, record.session_id, *self._scope_keys(app_name, uid))
                )
                if stored is not None:
                    found.append(self._session(app_name, uid, sid, stored, []))
            cursor = page.cursor
            if cursor is None:
                break
        found.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
        return ListSessionsResponse(sessions=found)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        session_id = session_id.strip() if session_id else session_id
        await self.store.sessions.delete(session_key(app_name, user_id, session_id))

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        raw = await self._run(plans.scope_state(self._scope_keys(app_name, user_id)[1]))
        return {k.decode(): _decode(v) for k, v in raw.items()}

    async def append_event(self, session: Session, event: Event) -> Event:
        """One stream entry and the event's state delta, in one script; see the module doc."""
        if event.partial:
            return event
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        delta = event.actions.state_delta if event.actions else None
        message = {
            "role": event.author or "event",
            "content": "",
            "timestamp": datetime.fromtimestamp(event.timestamp, UTC),
            "metadata": {"message_id": event.id, "adk_event": event.model_dump_json()},
        }
        marker = session._storage_update_marker
        key = session_key(session.app_name, session.user_id, session.id)
        try:
            result = await self._run(
                plans.append_event(
                    self._config,
                    key,
                    message,
                    plans.NO_GUARD if marker is None else marker,
                    *self._scope_keys(session.app_name, session.user_id),
                    _split(delta),
                    repr(event.timestamp),
                )
            )
        except plans.Stale as stale:
            raise StaleSessionError(_STALE.format(current=stale.current)) from None
        except SessionNotFound:
            raise SessionNotFoundError(f"Session {session.id} not found.") from None
        if result.created:
            self._commit_event_to_session(session, event)
            session.last_update_time = event.timestamp
            session._storage_update_marker = result.entry_id
        return event
