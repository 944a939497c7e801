"""ContextEngine conversation histories: messages, agent messages, the compacted view."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from convstore import codec, plans
from convstore.adapters.contextengine.compression import CompressionMethods
from convstore.adapters.contextengine.shapes import json_in
from convstore.errors import SessionNotFound, ValidationError
from convstore.models import AgentCommunicationMessage, utc_now
from convstore.plans import contextengine as cep
from convstore.plans import messages as pm
from convstore.plans.reference import reference_entry
from convstore.validation import non_empty_str, non_negative_int, str_dict

__all__ = ["ConversationMethods"]


def _limit(value: object) -> int:
    return non_negative_int(value, "limit", hint=" (0 = all)")


class ConversationMethods(CompressionMethods):
    async def _append(self, key: str, message: Any) -> None:
        """One atomic append (trim, TTL and activity included) with this engine's retention;
        a session nobody created is accepted, as the reference does."""
        await self._run(plans.append_messages(self.config, key, [message], unsaved_ok=True))
        self._counters.total_messages += 1

    async def add_conversation_message(
        self,
        session_id: str,
        role: str,
        content: str,
        metadata: dict[str, Any] | None = None,
        *,
        strategy: str | tuple[str, ...] | None = None,
    ) -> bool:
        """Append one message; True once stored.

        Like the reference, a session that was never created is fine: the message is kept
        (``get_session`` stays None until ``create_session``). Metadata that cannot be
        stored raises :class:`CodecError` and nothing is written. With
        ``compress_on_append`` set, compaction runs afterwards (``strategy`` overrides the
        policy's chain), as in the reference.
        """
        if strategy is not None and not isinstance(strategy, str | tuple):
            raise ValidationError(
                "strategy must be a str, a tuple of str or None", field="strategy"
            )
        non_empty_str(session_id, "session_id")
        meta = json_in(str_dict(metadata))
        codec.check_storable(meta, "metadata")
        await self._append(
            session_id,
            {"role": role, "content": content, "timestamp": utc_now(), "metadata": meta},
        )
        if self.compress_on_append:
            await self.compress_on_append_if_needed(session_id, strategy=strategy)
        return True

    async def get_conversation_history(
        self, session_id: str, limit: int = 50, *, include_compacted: bool = False
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` messages (0 = all), oldest first, as ``{role, content,
        timestamp, metadata}`` dicts; [] for an unknown session, like the reference.

        After a compaction this is the compacted view (the summary, if any, then the
        messages from the boundary on); ``include_compacted=True`` reads every stored
        message instead. Compaction never deletes a message.
        """
        non_empty_str(session_id, "session_id")
        n = _limit(limit)
        if include_compacted:
            try:
                every = await self._run(pm.reference_history(self.config, session_id, n or None))
            except SessionNotFound:
                return []
            return list(every)  # a plain list, as the reference's
        found = await self._run(cep.view(self.config, session_id, n, reference=True))
        out: list[dict[str, Any]] = list(found.entries)  # a plain list, as the reference's
        if found.summary is not None and (n == 0 or len(out) < n):
            out.insert(0, found.summary)
        return out

    async def add_agent_communication_message(
        self,
        session_key: str,
        sender_id: str,
        sender_type: str,
        sender_role: str | None,
        recipient_id: str,
        recipient_type: str,
        recipient_role: str | None,
        content: str,
        message_type: str = "communication",
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        """Append an agent message (routing fields in metadata); True once stored."""
        message = AgentCommunicationMessage(
            message_id="",
            session_key=session_key,
            sender_id=sender_id,
            sender_type=sender_type,
            sender_role=sender_role,
            recipient_id=recipient_id,
            recipient_type=recipient_type,
            recipient_role=recipient_role,
            content=content,
            message_type=message_type,
            timestamp=utc_now(),
            metadata=json_in(str_dict(metadata)),
        )
        await self._append(session_key, message)
        return True

    async def get_agent_conversation_history(
        self, session_key: str, limit: int = 50, message_types: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` (0 = all) messages *of the given types*, oldest first.

        The filter runs before the limit (the reference filtered the newest ``limit``
        messages, returning fewer than asked). A message without ``message_type`` counts
        as ``"communication"``, as in the reference.
        """
        non_empty_str(session_key, "session_key")
        n = _limit(limit)
        if message_types is not None:
            if isinstance(message_types, str) or not all(isinstance(t, str) for t in message_types):
                raise ValidationError("message_types must be a list of str", field="message_types")
        wanted = set(message_types) if message_types else None  # [] filters nothing, as in aiecs
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            try:
                page = await self.store.messages.page(session_key, cursor, 200)
            except SessionNotFound:
                return []
            for entry in reversed(page.items):
                kind = entry["metadata"].get("message_type", "communication")
                if wanted is None or (isinstance(kind, str) and kind in wanted):
                    found.append(entry)
                    if n and len(found) == n:
                        break
            if (n and len(found) == n) or page.cursor is None:
                break
            cursor = page.cursor
        found.reverse()
        return [reference_entry(e) for e in found]

    async def get_compressed_context(
        self, session_id: str, format: str = "messages", compress_first: bool = False
    ) -> Any:
        """The (compacted) history as ``"messages"`` or ``"dict"`` (lists of dicts) or
        ``"string"`` (``[%Y-%m-%d %H:%M:%S] role: content`` blocks), like the reference."""
        if format not in ("messages", "string", "dict"):
            raise ValidationError(
                f"Invalid format '{format}'. Must be 'messages', 'string', or 'dict'",
                field="format",
            )
        if compress_first:
            await self.compress_conversation(session_id)
        messages = await self.get_conversation_history(session_id)
        if format != "string":
            return messages
        return "\n\n".join(
            f"[{datetime.fromisoformat(m['timestamp']).strftime('%Y-%m-%d %H:%M:%S')}] "
            f"{m['role']}: {m['content']}"
            for m in messages
        )
