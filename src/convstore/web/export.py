"""One session as JSON Lines, for the session page's export link.

Line 1: ``{"kind": "session", "session_key": ..., "session": <ConversationSession.to_dict()>}``;
then one ``{"kind": "message", "entry_id": ..., "message": {role, content, timestamp,
metadata}}`` per message, oldest first, read in chunks through ``messages.entries`` so a
long history never sits in memory at once. (The CLI's ``convstore export`` may settle on
another layout; this one is the web page's.)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from convstore.errors import SessionNotFound
from convstore.store import AsyncConversationStore

__all__ = ["CHUNK", "session_jsonl", "to_json"]

CHUNK = 1000


def to_json(value: Any) -> str:
    """Compact JSON; anything not JSON by nature (bytes in metadata, say) as its repr."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)


async def session_jsonl(store: AsyncConversationStore, key: str) -> AsyncIterator[str]:
    """The export, line by line (each ends with a newline). Raises ``SessionNotFound``
    before the first line when there is no such session."""
    session = await store.sessions.get(key)
    if session is None:
        raise SessionNotFound(key)
    yield to_json({"kind": "session", "session_key": key, "session": session.to_dict()}) + "\n"
    after = "0-0"
    while True:
        chunk = await store.messages.entries(key, after=after, limit=CHUNK)
        for entry in chunk:
            line = {"kind": "message", "entry_id": entry.entry_id, "message": entry.message}
            yield to_json(line) + "\n"
        if len(chunk) < CHUNK:
            return
        after = chunk[-1].entry_id
