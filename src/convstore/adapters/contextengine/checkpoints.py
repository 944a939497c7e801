"""Checkpoints, checkpoint writes and task contexts, beside their session (one hash tag)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from convstore import codec
from convstore.adapters.contextengine.sessions import SessionMethods
from convstore.adapters.contextengine.shapes import sanitize
from convstore.errors import CodecError, ValidationError
from convstore.models import to_utc, utc_now
from convstore.plans import as_text
from convstore.plans import contextengine as cep
from convstore.plans.reference import naive_iso, to_json
from convstore.validation import non_empty_str, non_negative_int, str_dict

__all__ = ["CheckpointMethods"]


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace(":", "%3A")


def _writes_field(checkpoint_id: str, task_id: str) -> str:
    """``checkpoint_id:task_id`` made injective (``:`` and ``%`` escaped in both parts)."""
    return f"{_escape(checkpoint_id)}:{_escape(task_id)}"


def _pairs(raw: Any) -> list[tuple[Any, Any]]:
    """HGETALL replies as (field, value) pairs, whatever the protocol."""
    if isinstance(raw, dict):
        return list(raw.items())
    return list(zip(raw[::2], raw[1::2], strict=True))


def _checkpoint_out(raw: bytes) -> dict[str, Any]:
    obj = codec.unpackb(raw, "checkpoint")
    created = obj.get("created_at")
    if not isinstance(created, datetime):
        raise CodecError("stored checkpoint has no created_at")
    return {
        "checkpoint_id": obj.get("checkpoint_id"),
        "thread_id": obj.get("thread_id"),
        "data": to_json(obj.get("data")),
        "metadata": to_json(obj.get("metadata") or {}),
        "created_at": naive_iso(created),
    }


class CheckpointMethods(SessionMethods):
    async def store_checkpoint(
        self,
        thread_id: str,
        checkpoint_id: str,
        checkpoint_data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        """Store a checkpoint (dataclasses become dicts and sets lists, as in the reference)."""
        return await self.put_checkpoint_record(thread_id, checkpoint_id, checkpoint_data, metadata)

    put_checkpoint = store_checkpoint

    async def put_checkpoint_record(
        self,
        thread_id: str,
        checkpoint_id: str,
        checkpoint_data: Any,
        metadata: Mapping[str, Any] | None = None,
        *,
        created_at: datetime | str | None = None,
        only_if_absent: bool = False,
    ) -> bool:
        """:meth:`store_checkpoint` with an explicit creation time (imports, permanent
        backend); with ``only_if_absent`` an existing checkpoint is kept and False returned."""
        non_empty_str(thread_id, "thread_id")
        non_empty_str(checkpoint_id, "checkpoint_id")
        data = sanitize(checkpoint_data)
        meta = sanitize(str_dict(metadata))
        codec.check_storable(data, "checkpoint_data")
        codec.check_storable(meta, "metadata")
        payload = codec.packb(
            {
                "v": codec.WIRE_VERSION,
                "k": "checkpoint",
                "checkpoint_id": checkpoint_id,
                "thread_id": thread_id,
                "data": data,
                "metadata": meta,
                "created_at": utc_now() if created_at is None else to_utc(created_at, "created_at"),
            }
        )
        written: bool = await self._run(
            cep.put(
                self.config,
                thread_id,
                cep.CHECKPOINTS,
                checkpoint_id,
                payload,
                self.checkpoint_ttl_ms,
                only_if_absent,
            )
        )
        if written:
            self._counters.total_checkpoints += 1
        return written or not only_if_absent

    async def _all_checkpoints(self, thread_id: str) -> list[dict[str, Any]]:
        non_empty_str(thread_id, "thread_id")
        raw = await self._call("HGETALL", self.config.keyspace.session(thread_id).checkpoints)
        found = [_checkpoint_out(value) for _, value in _pairs(raw)]
        found.sort(key=lambda c: (c["created_at"], c["checkpoint_id"]), reverse=True)
        return found

    async def get_checkpoint(
        self, thread_id: str, checkpoint_id: str | None = None
    ) -> dict[str, Any] | None:
        """One checkpoint, or the latest (by ``created_at``) when no id is given; None if absent."""
        if checkpoint_id is None:
            found = await self._all_checkpoints(thread_id)
            return found[0] if found else None
        non_empty_str(thread_id, "thread_id")
        non_empty_str(checkpoint_id, "checkpoint_id")
        key = self.config.keyspace.session(thread_id).checkpoints
        raw = await self._call("HGET", key, checkpoint_id)
        return None if raw is None else _checkpoint_out(raw)

    async def list_checkpoints(self, thread_id: str, limit: int = 10) -> list[dict[str, Any]]:
        """Newest first, at most ``limit``."""
        n = non_negative_int(limit, "limit", hint=" (0 = all)")
        found = await self._all_checkpoints(thread_id)
        return found[:n]

    async def put_writes(
        self, thread_id: str, checkpoint_id: str, task_id: str, writes_data: list[tuple[Any, ...]]
    ) -> bool:
        return await self.put_writes_record(thread_id, checkpoint_id, task_id, writes_data)

    async def put_writes_record(
        self,
        thread_id: str,
        checkpoint_id: str,
        task_id: str,
        writes_data: Sequence[Any],
        *,
        created_at: datetime | str | None = None,
        only_if_absent: bool = False,
    ) -> bool:
        """:meth:`put_writes` with an explicit creation time and an only-if-absent mode."""
        non_empty_str(thread_id, "thread_id")
        non_empty_str(checkpoint_id, "checkpoint_id")
        non_empty_str(task_id, "task_id")
        if not isinstance(writes_data, list | tuple):
            raise ValidationError("writes_data must be a list of tuples", field="writes_data")
        writes = sanitize(list(writes_data))
        codec.check_storable(writes, "writes_data")
        payload = codec.packb(
            {
                "v": codec.WIRE_VERSION,
                "k": "writes",
                "thread_id": thread_id,
                "checkpoint_id": checkpoint_id,
                "task_id": task_id,
                "writes": writes,
                "created_at": utc_now() if created_at is None else to_utc(created_at, "created_at"),
            }
        )
        field = _writes_field(checkpoint_id, task_id)
        written: bool = await self._run(
            cep.put(
                self.config, thread_id, cep.WRITES, field, payload, self.checkpoint_ttl_ms,
                only_if_absent,
            )
        )  # fmt: skip
        return written or not only_if_absent

    async def get_writes(self, thread_id: str, checkpoint_id: str) -> list[tuple[Any, ...]]:
        """Every write of the checkpoint, as tuples, ordered by task write time then task id."""
        non_empty_str(thread_id, "thread_id")
        non_empty_str(checkpoint_id, "checkpoint_id")
        raw = await self._call("HGETALL", self.config.keyspace.session(thread_id).writes)
        prefix = _escape(checkpoint_id) + ":"
        batches = []
        for field, value in _pairs(raw):
            if not as_text(field).startswith(prefix):
                continue
            obj = codec.unpackb(value, "writes")
            batches.append(
                (obj.get("created_at"), str(obj.get("task_id")), obj.get("writes") or [])
            )
        batches.sort(key=lambda b: (b[0], b[1]))
        return [
            tuple(to_json(w)) if isinstance(w, list) else (to_json(w),)
            for _, _, writes in batches
            for w in writes
        ]

    async def get_task_context(self, session_id: str) -> dict[str, Any] | None:
        """The stored task context as a dict (``TaskContext.to_dict()`` form), or None."""
        non_empty_str(session_id, "session_id")
        raw = await self._call("GET", self.config.keyspace.session(session_id).task)
        if raw is None:
            return None
        data = codec.unpackb(raw, "task_context").get("data")
        if not isinstance(data, dict):
            raise CodecError("stored task context is not a map")
        result: dict[str, Any] = to_json(data)
        return result

    async def store_task_context(self, session_id: str, context: Any) -> bool:
        """Store a TaskContext (anything with ``to_dict()``) or a dict; True once stored.

        Dataclasses inside become dicts and sets lists, as in the reference.
        """
        non_empty_str(session_id, "session_id")
        to_dict = getattr(context, "to_dict", None)
        data = to_dict() if callable(to_dict) else context
        if not isinstance(data, Mapping):
            raise ValidationError(
                f"context must be a dict or have to_dict(), got {type(context).__name__}",
                field="context",
            )
        clean = sanitize(dict(data))
        codec.check_storable(clean, "context")
        return await self.put_task_context(session_id, clean)
