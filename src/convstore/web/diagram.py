"""The sequence diagram's data: a lane per participant, an arrow per message.

The browser draws it (``static/app.js``) from this JSON, with DOM text nodes only, so no
stored string is ever parsed as markup. The same :func:`arrow` shapes live messages.
"""

from __future__ import annotations

from typing import Any

from convstore.models import ConversationSession

__all__ = ["arrow", "diagram", "lanes"]

#: Longest label drawn on an arrow; the full text is in the list beside the diagram.
LABEL_CHARS = 60


def _role_owners(session: ConversationSession) -> dict[str, str]:
    """A plain message's role names its sender when exactly one participant has that type."""
    by_type: dict[str, list[str]] = {}
    for p in session.participants:
        by_type.setdefault(str(p.participant_type), []).append(p.participant_id)
    return {kind: ids[0] for kind, ids in by_type.items() if len(ids) == 1}


def arrow(session: ConversationSession, message: dict[str, Any], index: int) -> dict[str, Any]:
    """One message as an arrow: sender lane to recipient lane (None: a note on the sender's
    lane, for a plain message without a recipient), its type and a short label."""
    meta = message.get("metadata") or {}
    role = str(message.get("role", ""))
    sender = meta.get("sender_id")
    if not isinstance(sender, str):
        sender = _role_owners(session).get(role, role)
    recipient = meta.get("recipient_id")
    kind = meta.get("message_type")
    content = message.get("content")
    text = content if isinstance(content, str) else repr(content)
    return {
        "index": index,
        "from": sender,
        "to": recipient if isinstance(recipient, str) else None,
        "type": kind if isinstance(kind, str) else role or "message",
        "label": text[:LABEL_CHARS] + ("…" if len(text) > LABEL_CHARS else ""),
        "message_id": str(meta.get("message_id", "")),
        "timestamp": str(message.get("timestamp", "")),
    }


def lanes(session: ConversationSession, arrows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The participants in their stored order, then any other sender or recipient seen."""
    out = [
        {"id": p.participant_id, "type": str(p.participant_type), "role": p.participant_role or ""}
        for p in session.participants
    ]
    seen = {lane["id"] for lane in out}
    for a in arrows:
        for who in (a["from"], a["to"]):
            if who is not None and who not in seen:
                seen.add(who)
                out.append({"id": who, "type": "unlisted", "role": ""})
    return out


def diagram(
    session: ConversationSession, messages: list[dict[str, Any]], first_index: int = 0
) -> dict[str, Any]:
    arrows = [arrow(session, m, first_index + i) for i, m in enumerate(messages)]
    return {"lanes": lanes(session, arrows), "arrows": arrows}
