"""ContextEngine sessions (SessionMetrics) and agent conversation sessions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from convstore import codec
from convstore.adapters.contextengine.base import ENGINE_ID, EngineBase
from convstore.adapters.contextengine.shapes import sanitize
from convstore.errors import SessionNotFound, ValidationError
from convstore.migration import migrate_participant_dict
from convstore.models import ConversationParticipant, ConversationSession, to_utc, utc_now
from convstore.plans import contextengine as cep
from convstore.plans import epoch_micros
from convstore.plans.reference import naive_iso
from convstore.validation import non_empty_str, non_negative_int, non_negative_number, str_dict

__all__ = ["SessionMethods", "metrics_fields", "participant_from_dict"]


def participant_from_dict(data: Mapping[str, Any]) -> ConversationParticipant:
    """A participant from either form: ``{id, type, role, metadata}`` or ``{participant_id, ...}``."""
    return ConversationParticipant.from_dict(migrate_participant_dict(data))


def metrics_fields(values: Mapping[str, Any]) -> dict[str, str]:
    """Session-hash fields for the SessionMetrics keys present in ``values`` (validated)."""
    fields: dict[str, str] = {}
    for name, value in values.items():
        if name == "user_id":
            fields["ce:uid"] = non_empty_str(value, name)
        elif name == "created_at":
            fields["ce:ca"] = str(epoch_micros(to_utc(value, name)))
        elif name == "request_count":
            fields["ce:rq"] = str(non_negative_int(value, name))
        elif name == "error_count":
            fields["ce:er"] = str(non_negative_int(value, name))
        elif name == "total_processing_time":
            fields["ce:pt"] = repr(non_negative_number(value, name))
        elif name == "status":
            fields["ce:st"] = non_empty_str(value, name)
    return fields


class SessionMethods(EngineBase):
    async def create_session(
        self, session_id: str, user_id: str, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Create (or, like the reference, reset) a session; returns its SessionMetrics dict.

        An agent conversation session already stored under the same key keeps its record.
        """
        data = await self.put_session_metrics(
            {"session_id": session_id, "user_id": user_id}, metadata=metadata, reset=True
        )
        self._counters.total_sessions += 1
        return data

    async def put_session_metrics(
        self,
        values: Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
        reset: bool = False,
        task_context: bool = True,
    ) -> dict[str, Any]:
        """Create or overwrite a session's SessionMetrics from ``values`` (at least
        ``session_id`` and ``user_id``); missing counters start at zero when ``reset``.

        Used by :meth:`create_session`, the permanent backend and the aiecs import.
        """
        unknown = set(values) - set(cep.SESSION_FIELDS)
        if unknown:
            raise ValidationError(f"unknown SessionMetrics keys {sorted(unknown)}", field="payload")
        session_id = non_empty_str(values.get("session_id"), "session_id")
        user_id = non_empty_str(values.get("user_id"), "user_id")
        meta = sanitize(str_dict(metadata))
        codec.check_storable(meta, "metadata")
        created = to_utc(values.get("created_at") or utc_now(), "created_at")
        fresh = reset or (await self._run(cep.session_metrics(self.config, session_id))) is None
        base: dict[str, Any] = {}
        if fresh:  # a new (or reset) session starts from zero, created now unless told
            base = {"created_at": created, "request_count": 0, "error_count": 0}
            base |= {"total_processing_time": 0.0, "status": "active"}
        fields = metrics_fields({**base, **values})
        last = values.get("last_activity") or (created if fresh else None)
        if not await self.store.sessions.exists(session_id):
            record = ConversationSession(
                session_id,
                [
                    ConversationParticipant(user_id, "user"),
                    ConversationParticipant(ENGINE_ID, "master_controller"),
                ],
                "user_to_mc",
                created,
                created,
                meta,
            )
            await self.store.sessions.save(record, force=True)
        await self._run(
            cep.update(
                self.config,
                session_id,
                require="record",
                bump=False,
                last_activity=None if last is None else to_utc(last, "last_activity"),
                fields=fields,
            )
        )
        if task_context:
            task = {
                "user_id": user_id,
                "chat_id": session_id,
                "metadata": meta,
                "context_history": [],
                "file_tracker": {},
                "model_tracker": [],
            }
            await self.put_task_context(session_id, task)
        found = await self.get_session(session_id)
        if found is None:  # deleted concurrently between the writes
            raise SessionNotFound(session_id)
        return found

    async def put_task_context(
        self, session_id: str, data: Mapping[str, Any], *, only_if_absent: bool = False
    ) -> bool:
        """Store a task-context dict; False only when ``only_if_absent`` and one exists."""
        payload = codec.packb({"v": codec.WIRE_VERSION, "k": "task_context", "data": dict(data)})
        written: bool = await self._run(
            cep.put(
                self.config, session_id, cep.TASK, "", payload, self.session_ttl_ms, only_if_absent
            )
        )
        return written or not only_if_absent

    async def get_session(self, session_id: str) -> dict[str, Any] | None:
        """The SessionMetrics dict (exactly its eight keys, naive ISO timestamps) or None."""
        non_empty_str(session_id, "session_id")
        found: dict[str, Any] | None = await self._run(cep.session_metrics(self.config, session_id))
        if found is None:
            return None
        found["created_at"] = naive_iso(found["created_at"])
        found["last_activity"] = naive_iso(found["last_activity"])
        return found

    async def update_session(
        self,
        session_id: str,
        updates: dict[str, Any] | None = None,
        increment_requests: bool = False,
        add_processing_time: float = 0.0,
        mark_error: bool = False,
    ) -> bool:
        """Atomically apply ``updates`` (SessionMetrics fields; unknown keys are ignored, like
        the reference) and the increments, and mark activity now. False if there is no
        ContextEngine session under ``session_id`` (an agent conversation key is none)."""
        non_empty_str(session_id, "session_id")
        add = non_negative_number(add_processing_time, "add_processing_time")
        updates = dict(updates or {})
        if "session_id" in updates and updates["session_id"] != session_id:
            raise ValidationError(
                "a session cannot be renamed through update_session", field="session_id"
            )
        last: datetime | None = None
        if updates.get("last_activity") is not None:
            last = to_utc(updates["last_activity"], "last_activity")
        known = {k: v for k, v in updates.items() if k in cep.SESSION_FIELDS}
        known.pop("session_id", None)
        known.pop("last_activity", None)
        result: bool = await self._run(
            cep.update(
                self.config,
                session_id,
                require="session",
                bump=True,
                last_activity=last,
                incr_requests=1 if increment_requests else 0,
                incr_errors=1 if mark_error else 0,
                add_time=add,
                fields=metrics_fields(known),
            )
        )
        return result

    async def end_session(self, session_id: str, status: str = "completed") -> bool:
        non_empty_str(status, "status")
        return await self.update_session(session_id, {"status": status})

    async def create_conversation_session(
        self,
        session_id: str,
        participants: list[dict[str, Any]],
        session_type: str,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Store an agent conversation session; returns its session key.

        Participants may be ``{id, type, role, metadata}`` (the reference's input form) or
        ``{participant_id, participant_type, participant_role, metadata}`` (its stored form).
        A ContextEngine session under the same key keeps its SessionMetrics.
        """
        if not isinstance(participants, list | tuple):
            raise ValidationError("participants must be a list of dicts", field="participants")
        now = utc_now()
        session = ConversationSession(
            session_id,
            [participant_from_dict(p) for p in participants],
            session_type,
            now,
            now,
            sanitize(str_dict(metadata)),
        )
        return await self.save_conversation_session(session)

    async def save_conversation_session(self, session: ConversationSession) -> str:
        """Store (or overwrite) an agent conversation session record; returns its key."""
        key = session.generate_session_key()
        await self.upgrade_layout(key)  # a layout-1 session reads its user from the record
        key = await self.store.sessions.save(session, force=True)
        await self._run(
            cep.update(self.config, key, require="record", bump=False, fields={"ce:cs": "1"})
        )
        return key

    async def upgrade_layout(self, key: str) -> bool:
        """Move a layout-1 ContextEngine session (user and creation time read from the
        record) to the current layout; True if it was one. Idempotent."""
        raw = await self._call("HMGET", self.config.keyspace.session(key).session, "ce", "ce:uid")
        if raw[0] is None or raw[1] is not None or raw[0] not in (b"session", "session"):
            return False
        found = await self._run(cep.session_metrics(self.config, key))
        if found is None:
            return False
        fields = metrics_fields({"user_id": found["user_id"], "created_at": found["created_at"]})
        return bool(
            await self._run(
                cep.update(self.config, key, require="session", bump=False, fields=fields)
            )
        )
