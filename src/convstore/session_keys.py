"""The spec's session keys: how a session's key is generated from its id, type and
participants, the spec's pattern check (kept result-for-result), and the exact parse of a
key back into every (type, id, roles) that produces it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from convstore.model_values import SessionType, parse_choice

if TYPE_CHECKING:
    from convstore.models import ConversationParticipant

__all__ = [
    "SessionKeyParse",
    "create_session_key",
    "parse_session_key",
    "validate_conversation_isolation_pattern",
]


def create_session_key(
    session_id: str, session_type: str, participants: list[ConversationParticipant]
) -> str:
    """Utility function to create session key for conversation isolation (the spec's scheme).

    The scheme is not injective: see :func:`parse_session_key` for the collisions it allows.
    """
    if session_type == "user_to_mc":
        return session_id
    if session_type == "mc_to_agent":
        agent_role = next(
            (p.participant_role for p in participants if p.participant_type == "agent"), "unknown"
        )
        return f"{session_id}_mc_to_{agent_role}"
    if session_type == "agent_to_agent":
        agent_roles = [p.participant_role for p in participants if p.participant_type == "agent"]
        if len(agent_roles) >= 2:
            return f"{session_id}_{agent_roles[0]}_to_{agent_roles[1]}"
        return f"{session_id}_agent_to_agent"
    if session_type == "user_to_agent":
        agent_role = next(
            (p.participant_role for p in participants if p.participant_type == "agent"), "unknown"
        )
        return f"{session_id}_user_to_{agent_role}"
    return session_id


def validate_conversation_isolation_pattern(session_key: str, expected_pattern: str) -> bool:
    """The spec's substring test, kept result-for-result for compatibility.

    It gives false positives (``"path_to_file"`` passes as ``agent_to_agent``); use
    :func:`parse_session_key` for an exact answer.
    """
    if expected_pattern == "user_to_mc":
        return "_" not in session_key or not any(
            x in session_key for x in ["_mc_to_", "_to_", "_user_to_"]
        )
    if expected_pattern == "mc_to_agent":
        return "_mc_to_" in session_key
    if expected_pattern == "agent_to_agent":
        return (
            "_to_" in session_key
            and "_mc_to_" not in session_key
            and "_user_to_" not in session_key
        )
    if expected_pattern == "user_to_agent":
        return "_user_to_" in session_key
    return False


class SessionKeyParse(NamedTuple):
    """One way a session key could have been generated: type, base session id and agent roles."""

    session_type: SessionType
    session_id: str
    roles: tuple[str, ...]


def _splits(text: str, sep: str) -> Iterable[tuple[str, str]]:
    start = text.find(sep)
    while start != -1:
        left, right = text[:start], text[start + len(sep) :]
        if left and right:
            yield left, right
        start = text.find(sep, start + 1)


def parse_session_key(
    session_key: str, session_type: str | None = None
) -> tuple[SessionKeyParse, ...]:
    """Every (type, session_id, roles) that :func:`create_session_key` maps to ``session_key``.

    Exact where the spec's validator guesses. More than one result means the key
    is ambiguous: e.g. ``"s_a_b_to_c"`` comes from session ``s_a`` with roles
    ``b, c`` *and* from session ``s`` with roles ``a_b, c``; any key at all is
    also a possible ``user_to_mc`` key, because that type uses the bare id.
    Results are in a fixed order (type, then shortest session id first).
    """
    wanted = (
        None if session_type is None else parse_choice(session_type, SessionType, "session_type")
    )
    found: list[SessionKeyParse] = []
    if session_key and wanted in (None, SessionType.USER_TO_MC):
        found.append(SessionKeyParse(SessionType.USER_TO_MC, session_key, ()))
    if wanted in (None, SessionType.MC_TO_AGENT):
        found += [
            SessionKeyParse(SessionType.MC_TO_AGENT, sid, (role,))
            for sid, role in _splits(session_key, "_mc_to_")
        ]
    if wanted in (None, SessionType.AGENT_TO_AGENT):
        for left, second in _splits(session_key, "_to_"):
            found += [
                SessionKeyParse(SessionType.AGENT_TO_AGENT, sid, (first, second))
                for sid, first in _splits(left, "_")
            ]
    if wanted in (None, SessionType.USER_TO_AGENT):
        found += [
            SessionKeyParse(SessionType.USER_TO_AGENT, sid, (role,))
            for sid, role in _splits(session_key, "_user_to_")
        ]
    return tuple(found)
