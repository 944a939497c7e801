"""The spec's maintenance checks as functions that return results instead of printing.

``validate_models_health`` fixes the spec's own example, which builds a
``user_to_agent`` session with only an agent (its own rules reject that).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable

from convstore import codec
from convstore.errors import ConvstoreError
from convstore.models import (
    AgentCommunicationMessage,
    ConversationParticipant,
    ConversationSession,
    create_session_key,
    parse_session_key,
    utc_now,
)
from convstore.monitoring import logger

__all__ = [
    "check_data_consistency",
    "data_consistency_problems",
    "model_health_problems",
    "validate_models_health",
]


def model_health_problems() -> list[str]:
    """Build, round-trip and encode one of each model; return what failed (empty = healthy)."""
    problems: list[str] = []
    try:
        user = ConversationParticipant(participant_id="health_user", participant_type="user")
        agent = ConversationParticipant(
            participant_id="test_001", participant_type="agent", participant_role="test_role"
        )
        now = utc_now()
        session = ConversationSession(
            session_id="test_session",
            participants=[user, agent],
            session_type="user_to_agent",
            created_at=now,
            last_activity=now,
        )
        message = AgentCommunicationMessage(
            message_id=str(uuid.uuid4()),
            session_key=session.generate_session_key(),
            sender_id="sender_001",
            sender_type="agent",
            sender_role="test_role",
            recipient_id="recipient_001",
            recipient_type="agent",
            recipient_role="test_role",
            content="Test message",
            message_type="communication",
            timestamp=now,
        )
    except ConvstoreError as exc:
        return [f"model construction failed: {exc}"]
    checks: tuple[tuple[str, Callable[[], bool]], ...] = (
        (
            "participant dict round trip",
            lambda: ConversationParticipant.from_dict(agent.to_dict()) == agent,
        ),
        (
            "session dict round trip",
            lambda: ConversationSession.from_dict(session.to_dict()) == session,
        ),
        (
            "message dict round trip",
            lambda: AgentCommunicationMessage.from_dict(message.to_dict()) == message,
        ),
        (
            "session codec round trip",
            lambda: codec.decode_session(codec.encode_session(session)) == session,
        ),
        (
            "message codec round trip",
            lambda: codec.decode_message(codec.encode_message(message)) == message,
        ),
    )
    for name, check in checks:
        try:
            if not check():
                problems.append(f"{name} changed the value")
        except ConvstoreError as exc:
            problems.append(f"{name} failed: {exc}")
    return problems


def validate_models_health() -> bool:
    """The spec's daily check: True when every model builds and round-trips."""
    problems = model_health_problems()
    for problem in problems:
        logger.error("model health: %s", problem)
    return not problems


def data_consistency_problems(session: ConversationSession) -> list[str]:
    """What is inconsistent in ``session`` (empty list = consistent)."""
    problems: list[str] = []
    try:
        generated = session.generate_session_key()
        expected = create_session_key(
            session.session_id, session.session_type, session.participants
        )
        if generated != expected:
            problems.append(f"session key mismatch: {generated!r} vs {expected!r}")
        problems += [
            f"participant {index} has an empty participant_id"
            for index, p in enumerate(session.participants)
            if not p.participant_id
        ]
        if session.key_parse() not in parse_session_key(generated, session.session_type):
            problems.append(f"session key {generated!r} does not parse back to this session")
    except (ValueError, TypeError, AttributeError) as exc:  # mutated into something unusable
        problems.append(f"session key cannot be checked: {type(exc).__name__}: {exc}")
    try:
        copy.deepcopy(session).validate()  # check without normalising the caller's object
    except ConvstoreError as exc:
        problems.append(f"session no longer validates: {exc}")
    return problems


def check_data_consistency(session: ConversationSession) -> bool:
    """The spec's consistency check, with an exact key parse instead of substring tests."""
    problems = data_consistency_problems(session)
    for problem in problems:
        logger.error("data consistency: %s", problem)
    return not problems
