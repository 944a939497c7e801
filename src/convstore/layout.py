"""Stored-layout migration of one session, for ``convstore migrate`` and by hand.

``migrate_session_layout(store, key)`` rewrites a session written by convstore before
layout 3 (stream fields ``m``/``d``/``tc``/``tr`` with array payloads, see ``lua/core.py``)
in place; every layout is read either way, so it can run any time, resumed, or twice.
"""

from __future__ import annotations

from convstore.lua import LAYOUT_VERSION
from convstore.plans import layout
from convstore.store import AsyncConversationStore, ConversationStore

__all__ = ["LAYOUT_VERSION", "amigrate_session_layout", "migrate_session_layout"]


def migrate_session_layout(store: ConversationStore, key: str) -> bool:
    """Convert one session to the current layout; True when it changed anything."""
    return store.driver.run(layout.migrate_session_layout(store.config, key))


async def amigrate_session_layout(store: AsyncConversationStore, key: str) -> bool:
    """:func:`migrate_session_layout` on an asyncio store."""
    return await store.driver.run(layout.migrate_session_layout(store.config, key))
