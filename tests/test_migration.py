"""convstore.migration: old dict forms upgrade to CURRENT_SCHEMA_VERSION and load."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convstore import (
    CURRENT_SCHEMA_VERSION,
    AgentCommunicationMessage,
    ConversationParticipant,
    ConversationSession,
    ValidationError,
    migrate_message_dict,
    migrate_models_to_new_version,
    migrate_participant_dict,
    migrate_session_dict,
)

T0 = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def old_session() -> dict[str, Any]:
    """A 1.0 session dict: no version key, a legacy participant, one without metadata,
    naive timestamps."""
    return {
        "session_id": "s1",
        "session_type": "mc_to_agent",
        "participants": [
            {"id": "mc_001", "type": "master_controller"},
            {"participant_id": "agent_001", "participant_type": "agent",
             "participant_role": "data_analyst"},
            {"id": "user_9", "type": "user", "role": None, "metadata": {"n": 1}},
        ],
        "created_at": "2024-01-02T03:04:05.678901",
        "last_activity": "2024-01-02T03:04:05.678901",
    }  # fmt: skip


def old_message() -> dict[str, Any]:
    return {
        "message_id": "m1",
        "session_key": "s1_mc_to_data_analyst",
        "sender_id": "mc_001",
        "sender_type": "master_controller",
        "sender_role": None,
        "recipient_id": "agent_001",
        "recipient_type": "agent",
        "recipient_role": "data_analyst",
        "content": "do it",
        "message_type": "task_assignment",
        "timestamp": "2024-01-02T03:04:05.678901",
        "metadata": {"k": [1]},
    }


def expected_session() -> ConversationSession:
    return ConversationSession(
        session_id="s1",
        participants=[
            ConversationParticipant("mc_001", "master_controller"),
            ConversationParticipant("agent_001", "agent", "data_analyst"),
            ConversationParticipant("user_9", "user", None, {"n": 1}),
        ],
        session_type="mc_to_agent",
        created_at=T0,
        last_activity=T0,
    )


def test_current_version() -> None:
    assert CURRENT_SCHEMA_VERSION == "2.0"


def test_1_0_session_migrates_and_loads() -> None:
    new = migrate_session_dict(old_session())
    assert new["version"] == CURRENT_SCHEMA_VERSION
    assert new["participants"] == [
        {"participant_id": "mc_001", "participant_type": "master_controller",
         "participant_role": None, "metadata": {}},
        {"participant_id": "agent_001", "participant_type": "agent",
         "participant_role": "data_analyst", "metadata": {}},
        {"participant_id": "user_9", "participant_type": "user",
         "participant_role": None, "metadata": {"n": 1}},
    ]  # fmt: skip
    assert new["created_at"] == "2024-01-02T03:04:05.678901+00:00"
    assert new["last_activity"] == "2024-01-02T03:04:05.678901+00:00"
    assert new["metadata"] == {}
    assert ConversationSession.from_dict(new) == expected_session()


def test_the_spec_entry_point_recognises_each_shape() -> None:
    assert migrate_models_to_new_version(old_session()) == migrate_session_dict(old_session())
    assert migrate_models_to_new_version(old_message()) == migrate_message_dict(old_message())
    legacy = {"id": "a", "type": "agent", "role": "writer"}
    assert migrate_models_to_new_version(legacy) == migrate_participant_dict(legacy)
    assert ConversationSession.from_dict(migrate_models_to_new_version(old_session())) == (
        expected_session()
    )


def test_explicit_1_0_version_is_the_same_as_none() -> None:
    assert migrate_session_dict({**old_session(), "version": "1.0"}) == (
        migrate_session_dict(old_session())
    )


def test_1_0_message_migrates_and_loads() -> None:
    new = migrate_message_dict(old_message())
    assert new["version"] == CURRENT_SCHEMA_VERSION
    assert new["timestamp"] == "2024-01-02T03:04:05.678901+00:00"
    message = AgentCommunicationMessage.from_dict(new)
    assert message.timestamp == T0
    assert message.metadata == {"k": [1]}
    assert message.to_dict() == {**old_message(), "timestamp": new["timestamp"]}


def test_legacy_participant_migrates_and_loads() -> None:
    new = migrate_participant_dict({"id": "p1", "type": "agent", "role": "writer"})
    assert new == {
        "participant_id": "p1",
        "participant_type": "agent",
        "participant_role": "writer",
        "metadata": {},
        "version": CURRENT_SCHEMA_VERSION,
    }
    assert ConversationParticipant.from_dict(new) == ConversationParticipant(
        "p1", "agent", "writer"
    )


def test_participant_without_role_or_metadata() -> None:
    new = migrate_participant_dict({"participant_id": "u", "participant_type": "user",
                                    "metadata": None})  # fmt: skip
    assert new["participant_role"] is None
    assert new["metadata"] == {}
    assert ConversationParticipant.from_dict(new) == ConversationParticipant("u", "user")


def test_canonical_keys_win_over_legacy_ones() -> None:
    new = migrate_participant_dict(
        {"id": "legacy", "participant_id": "canonical", "type": "user", "role": "r"}
    )
    assert new["participant_id"] == "canonical"
    assert "id" not in new and "type" not in new and "role" not in new
    assert (new["participant_type"], new["participant_role"]) == ("user", "r")


def test_1_1_dict_only_gets_timestamps_upgraded() -> None:
    d = expected_session().to_dict()
    d["version"] = "1.1"
    d["created_at"] = "2024-01-02T03:04:05.678901"
    d["last_activity"] = "2024-01-02T04:04:05.678901+01:00"
    new = migrate_session_dict(d)
    assert new["version"] == CURRENT_SCHEMA_VERSION
    assert new["created_at"] == new["last_activity"] == "2024-01-02T03:04:05.678901+00:00"
    assert new["participants"] == d["participants"]
    assert ConversationSession.from_dict(new) == expected_session()


def test_datetime_objects_in_old_dicts_become_iso_strings() -> None:
    d = {**old_session(), "created_at": datetime(2024, 1, 2, 3, 4, 5, 678901)}
    new = migrate_session_dict(d)
    assert new["created_at"] == "2024-01-02T03:04:05.678901+00:00"


@pytest.mark.parametrize(
    "migrate",
    [migrate_session_dict, migrate_message_dict, migrate_participant_dict,
     migrate_models_to_new_version],
)  # fmt: skip
def test_inputs_are_not_mutated(migrate: Any) -> None:
    for data in (old_session(), old_message(), {"id": "p", "type": "user", "metadata": {"a": [1]}}):
        before = copy.deepcopy(data)
        out = migrate(data)
        assert data == before
        # and the output shares nothing mutable with the input
        for value in out.values():
            if isinstance(value, dict | list):
                assert all(value is not original for original in data.values())
        scribble(out)
        assert data == before


def scribble(value: Any) -> None:
    """Mutate every dict and list inside ``value``."""
    if isinstance(value, dict):
        for item in list(value.values()):
            scribble(item)
        value["scribbled"] = True
    elif isinstance(value, list):
        for item in value:
            scribble(item)
        value.append("scribbled")


@pytest.mark.parametrize("version", ["2.1", "3.0", "10.0", "2.0.1"])
def test_newer_versions_pass_through_unchanged(version: str) -> None:
    future = {
        "version": version,
        "session_id": "s",
        "participants": [{"id": "still-legacy", "future": True}],
        "created_at": "naive? who knows",
        "new_field": {"x": [1, 2]},
    }
    out = migrate_session_dict(future)
    assert out == future
    assert out is not future
    assert out["new_field"] is not future["new_field"]
    assert migrate_models_to_new_version(future) == future
    assert migrate_message_dict({"version": version, "timestamp": "x"}) == {
        "version": version, "timestamp": "x"
    }


def test_current_version_is_a_fixed_point() -> None:
    once = migrate_session_dict(old_session())
    assert migrate_session_dict(once) == once
    assert migrate_message_dict(migrate_message_dict(old_message())) == (
        migrate_message_dict(old_message())
    )


@pytest.mark.parametrize("version", ["abc", "1.x", "", "1..0", None, "v2", [1, 0]])
def test_bad_version_strings_raise(version: object) -> None:
    with pytest.raises(ValidationError) as info:
        migrate_session_dict({**old_session(), "version": version})
    assert info.value.field == "version"
    assert str(info.value) == f"version must look like '1.0', got {version!r}"
    assert isinstance(info.value, ValueError)
    with pytest.raises(ValidationError):
        migrate_models_to_new_version({**old_message(), "version": version})


def test_non_mappings_raise() -> None:
    with pytest.raises(ValidationError) as info:
        migrate_session_dict(["not", "a", "dict"])  # type: ignore[arg-type]
    assert info.value.field == "data"
    with pytest.raises(ValidationError) as info:
        migrate_session_dict({"participants": ["mc_001"]})
    assert info.value.field == "participants"
    assert str(info.value) == "a participant must be a mapping, got str"


def test_bad_old_timestamps_raise() -> None:
    with pytest.raises(ValidationError) as info:
        migrate_session_dict({**old_session(), "created_at": "last tuesday"})
    assert info.value.field == "created_at"
    with pytest.raises(ValidationError) as info:
        migrate_message_dict({**old_message(), "timestamp": 1700000000})
    assert info.value.field == "timestamp"


# --------------------------------------------------------------------------- property

ids = st.text(min_size=1, max_size=8)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6)),
    lambda c: st.one_of(
        st.lists(c, max_size=3), st.dictionaries(st.text(max_size=4), c, max_size=3)
    ),
    max_leaves=6,
)
metadata = st.dictionaries(st.text(max_size=6), json_values, max_size=3)


@st.composite
def old_sessions(draw: st.DrawFn) -> tuple[ConversationSession, dict[str, Any]]:
    """A valid session, and a 1.0 dict of it written in any of the old styles."""
    stype, types = draw(
        st.sampled_from(
            [
                ("user_to_mc", ["user", "master_controller"]),
                ("mc_to_agent", ["master_controller", "agent"]),
                ("user_to_agent", ["agent", "user"]),
                ("agent_to_agent", ["agent", "agent"]),
            ]
        )
    )
    pids = draw(st.lists(ids, min_size=2, max_size=2, unique=True))
    participants = [
        ConversationParticipant(pid, t, draw(ids) if t == "agent" else None, draw(metadata))
        for pid, t in zip(pids, types, strict=True)
    ]
    when = draw(st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2100, 1, 1)))
    session = ConversationSession(
        draw(ids), participants, stype, when, when, draw(metadata)
    )
    old: dict[str, Any] = {
        "session_id": session.session_id,
        "session_type": stype,
        "created_at": when.isoformat(),  # naive
        "last_activity": when.isoformat(),
        "participants": [],
    }
    if session.metadata or draw(st.booleans()):
        old["metadata"] = session.metadata
    if draw(st.booleans()):
        old["version"] = "1.0"
    for p in participants:
        style = draw(st.sampled_from(["legacy", "no-metadata", "canonical"]))
        if style == "legacy" and not p.metadata:
            entry: dict[str, Any] = {"id": p.participant_id, "type": p.participant_type}
            if p.participant_role is not None or draw(st.booleans()):
                entry["role"] = p.participant_role
        else:
            entry = {"participant_id": p.participant_id, "participant_type": p.participant_type,
                     "participant_role": p.participant_role}  # fmt: skip
            if p.metadata or style == "canonical":
                entry["metadata"] = p.metadata
        old["participants"].append(entry)
    return session, old


@given(old_sessions())
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_old_session_dict_migrates_to_the_same_session(
    case: tuple[ConversationSession, dict[str, Any]],
) -> None:
    session, old = case
    before = copy.deepcopy(old)
    new = migrate_models_to_new_version(old)
    assert old == before
    assert new["version"] == CURRENT_SCHEMA_VERSION
    assert ConversationSession.from_dict(new) == session
    assert migrate_models_to_new_version(new) == new
