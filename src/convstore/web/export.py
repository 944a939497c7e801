"""One session as JSON Lines, for the session page's export link.

Line 1: ``{"kind": "session", "session_key": ..., "session": <ConversationSession.to_dict()>}``;
then one ``{"kind": "message", "entry_id": ..., "message": {role, content, timestamp,
metadata}}`` per message, oldest first (a damaged entry is a ``{"kind": "damaged",
"entry_id": ..., "error": ...}`` line in its place), read in chunks through ``messages.entries`` so a
long history never sits in memory at once. (The CLI's ``convstore export`` may settle on
another layout; this one is the web page's.)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from convstore import Entry, Records
from convstore.errors import SessionNotFound
from convstore.plans.values import stream_order
from convstore.store import AsyncConversationStore

__all__ = ["CHUNK", "last_id", "session_jsonl", "to_json"]

CHUNK = 1000


def to_json(value: Any) -> str:
    """Compact JSON; anything not JSON by nature (bytes in metadata, say) as its repr."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)


def last_id(cursor: str, batch: Records[Entry]) -> str:
    """The read's last entry id, counting the damaged entries it left out."""
    ids = [e.entry_id for e in batch] + [x.entry_id for x in batch.skipped if x.entry_id]
    return max([cursor, *ids], key=stream_order)


async def session_jsonl(store: AsyncConversationStore, key: str) -> AsyncIterator[str]:
    """The export, line by line (each ends with a newline). Raises ``SessionNotFound``
    before the first line when there is no such session."""
    session = await store.sessions.get(key)
    if session is None:
        raise SessionNotFound(key)
    yield to_json({"kind": "session", "session_key": key, "session": session.to_dict()}) + "\n"
    after = "0-0"
    while True:
        chunk = await store.messages.entries(key, after=after, limit=CHUNK, on_error="skip")
        lines = [
            (e.entry_id, {"kind": "message", "entry_id": e.entry_id, "message": e.message})
            for e in chunk
        ] + [
            (x.entry_id or "0-0", {"kind": "damaged", "entry_id": x.entry_id, "error": str(x)})
            for x in chunk.skipped
        ]
        for _, line in sorted(lines, key=lambda pair: stream_order(pair[0])):
            yield to_json(line) + "\n"
        if len(chunk) + len(chunk.skipped) < CHUNK:
            return
        after = last_id(after, chunk)
