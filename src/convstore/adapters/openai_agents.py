"""OpenAI Agents SDK session (``convstore[openai-agents]``): ``agents.memory.SessionABC``.

Each SDK item is one message of a convstore session whose key is the SDK's
``session_id`` (a ``user_to_mc`` session, created on the first write). Items are kept
losslessly in the message metadata (``agents_item``; a plain string ``content`` is the
message's content, so the history stays readable), and calls and their outputs carry the
tool-call fields convstore keeps groups by: ``tool_calls`` (``[{"id", "name"}]``) on an
item that opens a call, ``tool_call_id`` on its output.

What it gives over the SDK's ``RedisSession``: every write is one script (no
WATCH/MULTI), all keys of a session share one cluster hash tag, ``pop_item`` is atomic
(the runner's rewind depends on it), concurrent first writes never drop items, and a
``limit`` never returns a call output whose call it cut off (it returns fewer items).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import Any, TypeVar

from agents.items import TResponseInputItem
from agents.memory import SessionABC, SessionSettings
from agents.memory.session_settings import coerce_session_settings, resolve_session_limit

from convstore.errors import SessionExists, SessionNotFound, ValidationError
from convstore.models import ConversationParticipant, ConversationSession, utc_now
from convstore.store import DEFAULT_NAMESPACE, AsyncConversationStore, ConversationStore

__all__ = ["ConvstoreSession", "item_to_message", "message_to_item", "whole_groups"]

T = TypeVar("T")
Store = ConversationStore | AsyncConversationStore

#: Metadata keys of a stored item.
ITEM, TEXT = "agents_item", "agents_text"


def item_to_message(item: TResponseInputItem) -> dict[str, Any]:
    """One SDK item as a convstore message dict (JSON round trip: the SDK's stores do too)."""
    try:
        data = json.loads(json.dumps(item))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"a session item must be JSON data: {exc}", field="items") from None
    if not isinstance(data, dict):
        raise ValidationError(f"a session item is a dict, got {type(item).__name__}", field="items")
    role = data.get("role") if isinstance(data.get("role"), str) else data.get("type")
    metadata: dict[str, Any] = {}
    content = ""
    if isinstance(data.get("content"), str):
        content = data.pop("content")
        metadata[TEXT] = True
    metadata[ITEM] = data
    call_id, kind = data.get("call_id"), str(data.get("type", ""))
    if isinstance(call_id, str):
        if kind.endswith("_output"):
            metadata["tool_call_id"] = call_id
        else:
            metadata["tool_calls"] = [{"id": call_id, "name": data.get("name", kind)}]
    return {"role": role if isinstance(role, str) and role else "item", "content": content,
            "metadata": metadata}  # fmt: skip


def message_to_item(message: dict[str, Any]) -> TResponseInputItem:
    """Inverse of :func:`item_to_message`; a message written by other code becomes
    ``{"role", "content"}``."""
    meta = message["metadata"]
    item = meta.get(ITEM)
    if not isinstance(item, dict):
        return {"role": message["role"], "content": message["content"]}
    if meta.get(TEXT):
        item = {**item, "content": message["content"]}
    return item  # type: ignore[return-value]


def whole_groups(items: list[TResponseInputItem]) -> list[TResponseInputItem]:
    """Drop call outputs whose call is not in ``items`` (a ``limit`` cut it off)."""
    opened = {
        d.get("call_id")
        for d in items
        if isinstance(d, dict) and not str(d.get("type", "")).endswith("_output")
    }
    return [
        d
        for d in items
        if not (
            isinstance(d, dict)
            and str(d.get("type", "")).endswith("_output")
            and isinstance(d.get("call_id"), str)
            and d.get("call_id") not in opened
        )
    ]


class _Done:
    """An already finished awaitable: ``close()`` may be called or awaited."""

    def __await__(self) -> Generator[Any, None, None]:
        yield from ()


class ConvstoreSession(SessionABC):
    """An SDK session kept in a convstore store (sync or async; a sync store's calls run in a
    worker thread, so one session works under ``Runner.run_sync``'s own event loop too)."""

    def __init__(
        self,
        session_id: str,
        *,
        store: Store,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        self.session_id = session_id
        self.session_settings = coerce_session_settings(session_settings or SessionSettings())
        self._store = store
        self._owns_store = False
        self._record = self._new_record()

    @classmethod
    def from_url(
        cls,
        session_id: str,
        *,
        url: str,
        namespace: str = DEFAULT_NAMESPACE,
        ttl: float | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> ConvstoreSession:
        """A session on its own async store at ``url``; ``close()`` closes it."""
        store = AsyncConversationStore.from_url(url, namespace=namespace, ttl=ttl)
        session = cls(session_id, store=store, session_settings=session_settings)
        session._owns_store = True
        return session

    def _new_record(self) -> ConversationSession:
        now = utc_now()
        people = [
            ConversationParticipant("user", "user"),
            ConversationParticipant("agent", "master_controller"),
        ]
        return ConversationSession(self.session_id, people, "user_to_mc", now, now)

    async def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        if isinstance(self._store, AsyncConversationStore):
            return await method(*args)
        return await asyncio.to_thread(method, *args)

    async def _or(self, default: T, method: Callable[..., Any], *args: Any) -> T:
        """``method(*args)``, or ``default`` when the session was never written."""
        try:
            result: T = await self._call(method, *args)
        except SessionNotFound:
            return default
        return result

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The newest ``limit`` items (else the settings' limit, else all), oldest first."""
        limit = resolve_session_limit(limit, self.session_settings)
        if limit is not None and limit <= 0:
            return []
        rows: list[dict[str, Any]] = await self._or(
            [], self._store.messages.history, self.session_id, limit
        )
        items = [message_to_item(m) for m in rows]
        return items if limit is None else whole_groups(items)

    async def add_items(self, items: Iterable[TResponseInputItem]) -> None:
        """Append in one atomic script; the first write creates the session."""
        messages = [item_to_message(i) for i in items]
        if not messages:
            return
        append = self._store.messages.append_many
        try:
            await self._call(append, self.session_id, messages)
        except SessionNotFound:
            try:
                await self._call(self._store.sessions.create, self._new_record())
            except SessionExists:
                pass  # a concurrent first write created it: append to it
            await self._call(append, self.session_id, messages)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item, atomically (one script)."""
        message: dict[str, Any] | None = await self._or(
            None, self._store.messages.pop, self.session_id
        )
        return None if message is None else message_to_item(message)

    async def clear_session(self) -> None:
        """Delete the session and its history."""
        await self._call(self._store.sessions.delete, self.session_id)

    async def ping(self) -> bool:
        """True when the server answers, False when it does not."""
        try:
            return bool(await self._call(self._store.ping))
        except ConnectionError:
            return False

    def close(self) -> Awaitable[None]:
        """Close the store if this session opened it (``from_url``); call or await it."""
        if not self._owns_store:
            return _Done()
        self._owns_store = False
        return self._store.aclose()
