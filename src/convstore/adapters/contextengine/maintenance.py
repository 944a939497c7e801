"""Cleanup, metrics and health, plus the record-level writes imports and mirrors use."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from convstore import plans
from convstore.adapters.contextengine.checkpoints import CheckpointMethods
from convstore.models import ConversationSession, utc_now
from convstore.plans import AppendResult, as_text, epoch_micros, from_epoch_micros
from convstore.plans import contextengine as cep
from convstore.plans.reference import naive_iso
from convstore.validation import non_negative_number

__all__ = ["MaintenanceMethods"]

_CHUNK = 500


class MaintenanceMethods(CheckpointMethods):
    async def _indexed_sessions(self, max_score: str = "+inf") -> list[str]:
        """Session keys in the store's activity index up to ``max_score`` (µs)."""
        rows = await self._call(
            "ZRANGE", self.config.keyspace.index_all, "-inf", max_score, "BYSCORE"
        )
        return [as_text(r) for r in rows]

    async def _fields(self, keys: list[str], *names: str) -> list[list[Any]]:
        """HMGET ``names`` of many sessions, ``_CHUNK`` per round trip."""
        out: list[list[Any]] = []
        for start in range(0, len(keys), _CHUNK):
            commands = [
                ("HMGET", self.config.keyspace.session(k).session, *names)
                for k in keys[start : start + _CHUNK]
            ]
            out += await self._run(cep.calls(commands))
        return out

    async def cleanup_expired_sessions(self, max_idle_hours: int = 24) -> int:
        """Delete sessions written through this adapter (ContextEngine sessions and agent
        conversation sessions) idle for more than ``max_idle_hours``, with their messages,
        checkpoints, writes and task context. Returns how many sessions were deleted."""
        hours = non_negative_number(max_idle_hours, "max_idle_hours")
        cutoff = epoch_micros(utc_now()) - int(hours * 3_600_000_000)
        keys = await self._indexed_sessions(f"({cutoff}")
        deleted = 0
        for key, (la, uid, legacy, conv) in zip(
            keys, await self._fields(keys, "la", "ce:uid", "ce", "ce:cs"), strict=True
        ):
            ours = uid is not None or legacy is not None or conv is not None
            if not ours or la is None or int(la) >= cutoff:
                continue
            if await self.store.sessions.delete(key):
                deleted += 1
        return deleted

    async def _count_active(self) -> int:
        keys = await self._indexed_sessions()
        active = 0
        for uid, legacy, status in await self._fields(keys, "ce:uid", "ce", "ce:st"):
            is_session = uid is not None or (legacy is not None and as_text(legacy) == "session")
            if is_session and (status is None or as_text(status) == "active"):
                active += 1
        return active

    async def _connected(self) -> bool:
        try:
            await self.store.ping()
        except Exception:  # noqa: BLE001 - any failure means "not connected" for a health report
            return False
        return True

    async def get_metrics(self) -> dict[str, Any]:
        """The reference's metrics: per-process counters, active sessions counted in Redis."""
        connected = await self._connected()
        return {
            "total_sessions": self._counters.total_sessions,
            "active_sessions": await self._count_active() if connected else 0,
            "total_messages": self._counters.total_messages,
            "total_checkpoints": self._counters.total_checkpoints,
            "storage_backend": "redis",
            "redis_connected": connected,
            "timestamp": naive_iso(utc_now()),
        }

    async def health_check(self) -> dict[str, Any]:
        """``{status, storage_backend, redis_connected, issues}``; never raises for a dead Redis."""
        connected = await self._connected()
        return {
            "status": "healthy" if connected else "degraded",
            "storage_backend": "redis",
            "redis_connected": connected,
            "issues": [] if connected else ["Redis connection failed"],
        }

    async def migrate_layout(self) -> int:
        """Move every layout-1 ContextEngine session of the namespace to the current layout
        (see ``lua.py``); returns how many moved. Idempotent and safe to rerun."""
        moved = 0
        for key in await self._indexed_sessions():
            moved += await self.upgrade_layout(key)
        return moved

    # ----------------------------------------------------------------- record-level writes

    async def activity_marker(self, key: str) -> str | None:
        """The stored last activity (µs) of ``key``, for :meth:`restore_activity`."""
        la = await self._call("HGET", self.config.keyspace.session(key).session, "la")
        return None if la is None else as_text(la)

    async def restore_activity(self, key: str, marker: str) -> None:
        """Set a session's last activity back to a value read by :meth:`activity_marker`."""
        await self._run(
            cep.update(
                self.config,
                key,
                require="record",
                bump=False,
                last_activity=from_epoch_micros(marker),
            )
        )

    async def append_records(
        self, key: str, messages: Iterable[Mapping[str, Any]]
    ) -> list[AppendResult]:
        """Append ContextEngine dicts as they are (timestamps and ``metadata.message_id``
        kept, so a rerun is idempotent), to a created session or not."""
        results: list[AppendResult] = await self._run(
            plans.append_messages(self.config, key, messages, unsaved_ok=True)
        )
        return results

    async def upsert_session_metrics(
        self, payload: Mapping[str, Any], *, create_only: bool = False
    ) -> bool:
        """Write a SessionMetrics dict as it is (counters, status, timestamps), creating the
        session when missing. With ``create_only`` an existing session is left alone and
        False is returned."""
        session_id = payload.get("session_id")
        if create_only and isinstance(session_id, str) and session_id:
            if await self.get_session(session_id) is not None:
                return False
        await self.put_session_metrics(payload, task_context=False)
        return True

    async def save_conversation_dict(
        self, data: Mapping[str, Any], *, create_only: bool = False
    ) -> str | None:
        """Store a ``ConversationSession.to_dict()`` dict; returns its key (None if it
        existed and ``create_only``)."""
        session = ConversationSession.from_dict(data)
        if create_only and await self.store.sessions.exists(session.generate_session_key()):
            return None
        return await self.save_conversation_session(session)
