"""aiecs's ``IPermanentStorageBackend`` on convstore: a stock ContextEngine dual-writes here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from convstore.adapters.contextengine.engine import ContextEngineStore
from convstore.errors import ValidationError
from convstore.models import ConversationSession, to_utc, utc_now
from convstore.store import DEFAULT_NAMESPACE, AsyncConversationStore
from convstore.validation import str_dict

__all__ = ["PermanentBackend"]


class PermanentBackend:
    """Pass it as ``ContextEngine(permanent_backend=PermanentBackend(...))``.

    A permanent backend keeps everything, forever: unlike :class:`ContextEngineStore`, its
    defaults are no message cap and no TTL (``conversation_limit``/``session_ttl`` set
    them). Give it a ``store``, a ``url``, a ``client``, or an existing ``engine``. Every
    method returns True once the data is stored and raises a typed convstore error
    otherwise (a stock ContextEngine swallows those at debug level: watch its log).
    """

    def __init__(
        self,
        store: AsyncConversationStore | None = None,
        *,
        engine: ContextEngineStore | None = None,
        url: str | None = None,
        client: Any = None,
        namespace: str = DEFAULT_NAMESPACE,
        conversation_limit: int | None = None,
        session_ttl: float | None = None,
        checkpoint_ttl: float | None = None,
    ) -> None:
        if engine is not None:
            if store is not None or url is not None or client is not None:
                raise ValidationError(
                    "pass engine alone, or a store, url or client", field="engine"
                )
            self.engine = engine
        else:
            self.engine = ContextEngineStore(
                store,
                url=url,
                client=client,
                namespace=namespace,
                conversation_limit=conversation_limit,
                session_ttl=session_ttl,
                checkpoint_ttl=checkpoint_ttl,
            )

    async def initialize(self) -> bool:
        return await self.engine.initialize()

    async def close(self) -> None:
        await self.engine.close()

    @staticmethod
    def _moment(created_at: str | None) -> datetime | None:
        return None if created_at is None else to_utc(created_at, "created_at")

    async def append_session_event(
        self,
        session_id: str,
        user_id: str,
        event_type: str,
        payload: dict[str, Any],
        created_at: str | None = None,
    ) -> bool:
        """``create``/``update``/``end`` with the SessionMetrics dict: the session mirrors it."""
        if event_type not in ("create", "update", "end"):
            raise ValidationError(
                f"event_type must be one of ['create', 'end', 'update'], got {event_type!r}",
                field="event_type",
            )
        data = {**str_dict(payload, "payload"), "session_id": session_id, "user_id": user_id}
        return await self.engine.upsert_session_metrics(data)

    async def append_conversation_message(
        self,
        session_id: str,
        role: str,
        content: str,
        metadata: dict[str, Any] | None = None,
        created_at: str | None = None,
    ) -> bool:
        """Append to the session's history (a ``message_id`` in metadata makes it idempotent)."""
        moment = self._moment(created_at) or utc_now()
        message = {"role": role, "content": content, "timestamp": moment}
        await self.engine.append_records(session_id, [{**message, "metadata": str_dict(metadata)}])
        return True

    async def append_checkpoint(
        self,
        thread_id: str,
        checkpoint_id: str,
        checkpoint_data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        created_at: str | None = None,
    ) -> bool:
        return await self.engine.put_checkpoint_record(
            thread_id, checkpoint_id, checkpoint_data, metadata, created_at=created_at
        )

    async def append_checkpoint_writes(
        self,
        thread_id: str,
        checkpoint_id: str,
        task_id: str,
        writes_data: list[tuple[Any, ...]],
        created_at: str | None = None,
    ) -> bool:
        return await self.engine.put_writes_record(
            thread_id, checkpoint_id, task_id, writes_data, created_at=created_at
        )

    async def append_conversation_session(
        self, session_key: str, session_data: dict[str, Any], created_at: str | None = None
    ) -> bool:
        """Store a ``ConversationSession.to_dict()``; its generated key must be ``session_key``."""
        session = ConversationSession.from_dict(session_data)
        if session.generate_session_key() != session_key:
            raise ValidationError(
                f"session_data generates key {session.generate_session_key()!r}, not {session_key!r}",
                field="session_key",
            )
        await self.engine.save_conversation_session(session)
        return True

    async def append_task_context_snapshot(
        self, session_id: str, context_data: dict[str, Any], created_at: str | None = None
    ) -> bool:
        return await self.engine.store_task_context(session_id, context_data)
