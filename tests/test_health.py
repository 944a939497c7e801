"""convstore.health: the spec's maintenance checks, returning results instead of printing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from convstore import (
    CodecError,
    ConversationParticipant,
    ConversationSession,
    check_data_consistency,
    create_session_key,
    data_consistency_problems,
    model_health_problems,
    validate_conversation_isolation_pattern,
    validate_models_health,
)
from convstore import health as health_module

T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def user(pid: str = "user_1") -> ConversationParticipant:
    return ConversationParticipant(pid, "user")


def mc(pid: str = "mc_1") -> ConversationParticipant:
    return ConversationParticipant(pid, "master_controller")


def agent(pid: str = "agent_1", role: str = "writer") -> ConversationParticipant:
    return ConversationParticipant(pid, "agent", role)


def make(session_type: str, session_id: str = "sess") -> ConversationSession:
    participants = {
        "user_to_mc": lambda: [user(), mc()],
        "mc_to_agent": lambda: [mc(), agent()],
        "agent_to_agent": lambda: [agent("a1", "writer"), agent("a2", "researcher")],
        "user_to_agent": lambda: [user(), agent()],
    }[session_type]()
    return ConversationSession(session_id, participants, session_type, T0, T0)


def spec_check_data_consistency(session: ConversationSession) -> bool:
    """The spec's check, minus its prints (its substring validator is the deciding step)."""
    try:
        generated_key = session.generate_session_key()
        expected_key = create_session_key(
            session.session_id, session.session_type, session.participants
        )
        if generated_key != expected_key:
            return False
        for participant in session.participants:
            if not participant.participant_id:
                return False
        return validate_conversation_isolation_pattern(generated_key, session.session_type)
    except Exception:  # noqa: BLE001 - the spec's own catch-all
        return False


# --------------------------------------------------------------------------- model health


def test_validate_models_health_is_true() -> None:
    assert validate_models_health() is True
    assert model_health_problems() == []


def test_model_health_reports_a_codec_that_changes_values(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(health_module.codec, "decode_session", lambda data: None)
    assert model_health_problems() == ["session codec round trip changed the value"]
    with caplog.at_level(logging.ERROR, logger="convstore"):
        assert validate_models_health() is False
    assert "model health: session codec round trip changed the value" in caplog.messages


def test_model_health_reports_a_codec_that_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes) -> object:
        raise CodecError("disk on fire")

    monkeypatch.setattr(health_module.codec, "decode_message", broken)
    assert model_health_problems() == ["message codec round trip failed: disk on fire"]
    assert validate_models_health() is False


# --------------------------------------------------------------------------- data consistency


@pytest.mark.parametrize(
    "session_type", ["user_to_mc", "mc_to_agent", "agent_to_agent", "user_to_agent"]
)
def test_valid_sessions_are_consistent(session_type: str) -> None:
    session = make(session_type)
    assert data_consistency_problems(session) == []
    assert check_data_consistency(session) is True
    assert spec_check_data_consistency(session) is True


@pytest.mark.parametrize(
    ("session_type", "session_id", "spec_says"),
    [
        ("user_to_mc", "team_to_do", False),  # the spec's substring test gets these wrong
        ("user_to_mc", "s_mc_to_writer", False),
        ("user_to_mc", "x_user_to_y", False),
        ("agent_to_agent", "s_mc_to_x", False),
        ("agent_to_agent", "s_user_to_x", False),
        ("mc_to_agent", "a_user_to_b", True),
        ("user_to_agent", "q_mc_to_r", True),
    ],
)
def test_ids_containing_separators_are_consistent(
    session_type: str, session_id: str, spec_says: bool
) -> None:
    session = make(session_type, session_id)
    assert data_consistency_problems(session) == []
    assert check_data_consistency(session) is True
    assert spec_check_data_consistency(session) is spec_says


def test_roles_containing_separators_are_consistent() -> None:
    session = ConversationSession(
        "s", [agent("a1", "mc_to_x"), agent("a2", "user_to_y")], "agent_to_agent", T0, T0
    )
    assert session.generate_session_key() == "s_mc_to_x_to_user_to_y"
    assert check_data_consistency(session) is True


def test_participants_changed_after_construction(caplog: pytest.LogCaptureFixture) -> None:
    session = make("user_to_mc")
    session.participants = [user()]
    problems = data_consistency_problems(session)
    assert problems == [
        "session no longer validates: "
        "user_to_mc session requires user and master_controller participants"
    ]
    with caplog.at_level(logging.ERROR, logger="convstore"):
        assert check_data_consistency(session) is False
    assert f"data consistency: {problems[0]}" in caplog.messages
    # the spec's check does not notice this at all
    assert spec_check_data_consistency(session) is True


def test_agent_removed_from_agent_to_agent() -> None:
    session = make("agent_to_agent")
    session.participants.pop()
    problems = data_consistency_problems(session)
    assert check_data_consistency(session) is False
    assert (
        "session no longer validates: agent_to_agent session requires at least 2 agent participants"
        in problems
    )
    assert "session key 'sess_agent_to_agent' does not parse back to this session" in problems


def test_duplicate_participant_added_after_construction() -> None:
    session = make("mc_to_agent")
    session.participants.append(agent("agent_1", "critic"))
    assert check_data_consistency(session) is False
    assert data_consistency_problems(session) == [
        "session no longer validates: participants must be distinct: "
        "participant_id 'agent_1' appears more than once"
    ]


def test_empty_participant_id_after_construction() -> None:
    session = make("user_to_agent")
    session.participants[0].participant_id = ""
    assert check_data_consistency(session) is False
    assert "participant 0 has an empty participant_id" in data_consistency_problems(session)
    assert spec_check_data_consistency(session) is False


def test_agent_role_removed_after_construction() -> None:
    session = make("agent_to_agent")
    session.participants[0].participant_role = None
    problems = data_consistency_problems(session)
    assert check_data_consistency(session) is False
    assert problems == [
        "session key 'sess_None_to_researcher' does not parse back to this session",
        "session no longer validates: participant_role is required for agent participants",
    ]


def test_session_type_changed_after_construction() -> None:
    session = make("mc_to_agent")
    session.session_type = "user_to_agent"
    problems = data_consistency_problems(session)
    assert check_data_consistency(session) is False
    assert problems == [
        "session no longer validates: user_to_agent session requires user and agent participants"
    ]


def test_session_type_set_to_garbage_is_reported_not_raised() -> None:
    session = make("user_to_mc")
    session.session_type = "bogus"
    problems = data_consistency_problems(session)
    assert check_data_consistency(session) is False
    assert problems[0].startswith("session key cannot be checked: ValueError:")
    assert problems[-1] == (
        "session no longer validates: session_type must be one of "
        "['agent_to_agent', 'mc_to_agent', 'user_to_agent', 'user_to_mc'], got 'bogus'"
    )


def test_participants_replaced_by_non_participants_is_reported_not_raised() -> None:
    session = make("user_to_mc")
    session.participants = [{"participant_id": "u", "participant_type": "user"}]  # type: ignore[list-item]
    problems = data_consistency_problems(session)
    assert check_data_consistency(session) is False
    assert problems == [
        "session key cannot be checked: AttributeError: "
        "'dict' object has no attribute 'participant_id'",
        "session no longer validates: participants[0] must be a ConversationParticipant, got dict",
    ]


def test_session_id_emptied_after_construction() -> None:
    session = make("mc_to_agent")
    session.session_id = ""
    problems = data_consistency_problems(session)
    assert check_data_consistency(session) is False
    assert "session no longer validates: session_id cannot be empty" in problems


def test_consistency_check_does_not_change_a_valid_session() -> None:
    session = make("agent_to_agent")
    before = session.to_dict()
    assert check_data_consistency(session) is True
    assert session.to_dict() == before


def test_participant_mutated_after_construction_is_caught_and_session_left_alone() -> None:
    session = make("user_to_mc")
    session.participants[0].participant_type = "alien"
    problems = data_consistency_problems(session)
    assert problems == [
        "session no longer validates: participant_type must be one of "
        "['agent', 'master_controller', 'user'], got 'alien'"
    ]
    assert session.participants[0].participant_type == "alien"  # the check did not normalise it
