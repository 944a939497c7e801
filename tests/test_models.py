"""convstore.models: validation rules and messages, datetime policy, dict round trips,
session keys (generation, the spec's substring validator, the exact parser) and monitoring."""

from __future__ import annotations

import copy
import json
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convstore import (
    AgentCommunicationMessage,
    ConversationParticipant,
    ConversationSession,
    MessageType,
    ParticipantType,
    SessionKeyParse,
    SessionType,
    ValidationError,
    create_session_key,
    parse_session_key,
    set_metrics_hook,
    to_utc,
    utc_now,
    validate_conversation_isolation_pattern,
)
from convstore.errors import ConvstoreError

PARTICIPANT_TYPES = ["agent", "master_controller", "user"]
SESSION_TYPES = ["agent_to_agent", "mc_to_agent", "user_to_agent", "user_to_mc"]
MESSAGE_TYPES = sorted(
    [
        "task_assignment",
        "result_report",
        "collaboration_request",
        "feedback",
        "communication",
        "status_update",
        "error_report",
        "task_completion",
        "progress_update",
        "clarification_request",
    ]
)
T0 = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- builders


def user(pid: str = "user_1", **kw: Any) -> ConversationParticipant:
    return ConversationParticipant(pid, "user", **kw)


def mc(pid: str = "mc_1", **kw: Any) -> ConversationParticipant:
    return ConversationParticipant(pid, "master_controller", **kw)


def agent(pid: str = "agent_1", role: str = "writer", **kw: Any) -> ConversationParticipant:
    return ConversationParticipant(pid, "agent", role, **kw)


def session(
    session_type: str = "user_to_mc",
    participants: list[Any] | None = None,
    session_id: str = "sess",
    **kw: Any,
) -> ConversationSession:
    if participants is None:
        participants = {
            "user_to_mc": lambda: [user(), mc()],
            "mc_to_agent": lambda: [mc(), agent()],
            "agent_to_agent": lambda: [agent("a1", "writer"), agent("a2", "researcher")],
            "user_to_agent": lambda: [user(), agent()],
        }[session_type]()
    kw.setdefault("created_at", T0)
    kw.setdefault("last_activity", T0)
    return ConversationSession(session_id, participants, session_type, **kw)


def message(**kw: Any) -> AgentCommunicationMessage:
    fields: dict[str, Any] = {
        "message_id": "m-1",
        "session_key": "sess_mc_to_writer",
        "sender_id": "mc_1",
        "sender_type": "master_controller",
        "sender_role": None,
        "recipient_id": "agent_1",
        "recipient_type": "agent",
        "recipient_role": "writer",
        "content": "write it",
        "message_type": "task_assignment",
        "timestamp": T0,
    }
    fields.update(kw)
    return AgentCommunicationMessage(**fields)


def raises(fn: Callable[[], object]) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        fn()
    return info.value


# --------------------------------------------------------------------------- hypothesis strategies

ids = st.one_of(
    st.text(min_size=1, max_size=12),
    st.text(alphabet="ab_tomcuser", min_size=1, max_size=12),
)
roles = st.one_of(
    st.text(min_size=1, max_size=10),
    st.text(alphabet="ab_tomc", min_size=1, max_size=10),
    st.sampled_from(["writer", "data_analyst", "a_to_b", "mc_to_x", "user_to_y", "_", "to"]),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=10),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
metadata = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=59), max_value=timedelta(hours=23)),
)
datetimes = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.one_of(st.none(), st.just(UTC), offsets),
)


@st.composite
def participants_st(draw: st.DrawFn, ptype: str | None = None) -> ConversationParticipant:
    ptype = ptype or draw(st.sampled_from(PARTICIPANT_TYPES))
    role = draw(roles) if ptype == "agent" else draw(st.one_of(st.none(), roles))
    return ConversationParticipant(draw(ids), ptype, role, draw(metadata))


_REQUIRED = {
    "user_to_mc": ["user", "master_controller"],
    "mc_to_agent": ["master_controller", "agent"],
    "user_to_agent": ["user", "agent"],
    "agent_to_agent": ["agent", "agent"],
}


@st.composite
def sessions_st(draw: st.DrawFn) -> ConversationSession:
    stype = draw(st.sampled_from(SESSION_TYPES))
    types = draw(
        st.permutations(
            _REQUIRED[stype] + draw(st.lists(st.sampled_from(PARTICIPANT_TYPES), max_size=3))
        )
    )
    pids = draw(st.lists(ids, min_size=len(types), max_size=len(types), unique=True))
    members = []
    for pid, ptype in zip(pids, types, strict=True):
        p = draw(participants_st(ptype))
        p.participant_id = pid
        members.append(p)
    return ConversationSession(
        session_id=draw(ids),
        participants=members,
        session_type=stype,
        created_at=draw(datetimes),
        last_activity=draw(datetimes),
        metadata=draw(metadata),
    )


@st.composite
def messages_st(draw: st.DrawFn) -> AgentCommunicationMessage:
    return AgentCommunicationMessage(
        message_id=draw(st.one_of(st.just(""), ids)),
        session_key=draw(ids),
        sender_id=draw(ids),
        sender_type=draw(st.sampled_from(PARTICIPANT_TYPES)),
        sender_role=draw(st.one_of(st.none(), roles)),
        recipient_id=draw(ids),
        recipient_type=draw(st.sampled_from(PARTICIPANT_TYPES)),
        recipient_role=draw(st.one_of(st.none(), roles)),
        content=draw(st.text(min_size=1, max_size=30)),
        message_type=draw(st.sampled_from(MESSAGE_TYPES)),
        timestamp=draw(datetimes),
        metadata=draw(metadata),
    )


# --------------------------------------------------------------------------- participant rules


def test_participant_empty_id() -> None:
    for empty in ("", None):
        err = raises(lambda empty=empty: ConversationParticipant(empty, "user"))
        assert str(err) == "participant_id cannot be empty"
        assert err.field == "participant_id"
        assert err.allowed is None


def test_participant_id_must_be_a_string() -> None:
    err = raises(lambda: ConversationParticipant(123, "user"))
    assert str(err) == "participant_id must be a string, got int"
    assert err.field == "participant_id"


def test_participant_empty_type() -> None:
    err = raises(lambda: ConversationParticipant("p", ""))
    assert str(err) == "participant_type cannot be empty"
    assert err.field == "participant_type"


@pytest.mark.parametrize("bad", ["alien", "User", "AGENT", " agent", 7])
def test_participant_unknown_type(bad: object) -> None:
    err = raises(lambda: ConversationParticipant("p", bad))
    assert str(err) == (
        f"participant_type must be one of ['agent', 'master_controller', 'user'], got {bad!r}"
    )
    assert err.field == "participant_type"
    assert err.allowed == ("agent", "master_controller", "user")


def test_participant_alien_message_exactly() -> None:
    err = raises(lambda: ConversationParticipant("p", "alien"))
    assert str(err) == (
        "participant_type must be one of ['agent', 'master_controller', 'user'], got 'alien'"
    )


@pytest.mark.parametrize("role", [None, ""])
def test_agent_requires_role(role: str | None) -> None:
    err = raises(lambda: ConversationParticipant("p", "agent", role))
    assert str(err) == "participant_role is required for agent participants"
    assert err.field == "participant_role"


def test_role_on_non_agent_is_accepted() -> None:
    assert ConversationParticipant("u", "user", "boss").participant_role == "boss"


def test_role_must_be_a_string() -> None:
    err = raises(lambda: ConversationParticipant("a", "agent", 5))
    assert str(err) == "participant_role must be a string or None, got int"
    assert err.field == "participant_role"


def test_participant_metadata_must_be_a_dict() -> None:
    err = raises(lambda: ConversationParticipant("u", "user", metadata=["x"]))
    assert str(err) == "metadata must be a dict, got list"
    assert err.field == "metadata"


def test_participant_validation_order_follows_the_reference() -> None:
    assert str(raises(lambda: ConversationParticipant("", ""))) == "participant_id cannot be empty"
    assert str(raises(lambda: ConversationParticipant("p", "", None))) == (
        "participant_type cannot be empty"
    )


def test_enum_member_accepted_as_type() -> None:
    p = ConversationParticipant("a", ParticipantType.AGENT, "w")
    assert p.participant_type is ParticipantType.AGENT


# --------------------------------------------------------------------------- session rules


def test_session_empty_id() -> None:
    err = raises(lambda: session(session_id=""))
    assert str(err) == "session_id cannot be empty"
    assert err.field == "session_id"


def test_session_id_checked_first() -> None:
    err = raises(lambda: ConversationSession("", [], "bogus", T0, T0))
    assert str(err) == "session_id cannot be empty"


def test_session_empty_participants() -> None:
    err = raises(lambda: session(participants=[]))
    assert str(err) == "participants list cannot be empty"
    assert err.field == "participants"


def test_session_empty_type() -> None:
    err = raises(lambda: ConversationSession("s", [user(), mc()], "", T0, T0))
    assert str(err) == "session_type cannot be empty"
    assert err.field == "session_type"


def test_session_unknown_type() -> None:
    err = raises(lambda: ConversationSession("s", [user(), mc()], "group_chat", T0, T0))
    assert str(err) == (
        "session_type must be one of "
        "['agent_to_agent', 'mc_to_agent', 'user_to_agent', 'user_to_mc'], got 'group_chat'"
    )
    assert err.field == "session_type"
    assert err.allowed == tuple(SESSION_TYPES)


U2MC = "user_to_mc session requires user and master_controller participants"
MC2A = "mc_to_agent session requires master_controller and agent participants"
U2A = "user_to_agent session requires user and agent participants"
A2A = "agent_to_agent session requires at least 2 agent participants"


@pytest.mark.parametrize(
    ("session_type", "participants", "text"),
    [
        ("user_to_mc", [user()], U2MC),
        ("user_to_mc", [mc()], U2MC),
        ("user_to_mc", [user(), agent()], U2MC),
        ("mc_to_agent", [mc()], MC2A),
        ("mc_to_agent", [user(), agent()], MC2A),
        ("user_to_agent", [agent()], U2A),
        ("user_to_agent", [user(), mc()], U2A),
        ("agent_to_agent", [agent()], A2A),
        ("agent_to_agent", [agent(), mc(), user()], A2A),
    ],
)
def test_session_participants_must_match_type(
    session_type: str, participants: list[ConversationParticipant], text: str
) -> None:
    err = raises(lambda: session(session_type, participants))
    assert str(err) == text
    assert err.field == "participants"


def test_agent_to_agent_with_two_agents_and_extras() -> None:
    s = session("agent_to_agent", [mc(), agent("a1", "x"), user(), agent("a2", "y")])
    assert s.generate_session_key() == "sess_x_to_y"


def test_extra_participants_are_allowed() -> None:
    s = session("user_to_mc", [user(), mc(), agent("a1"), agent("a2", "r")])
    assert len(s.participants) == 4


def test_duplicate_participant_ids_rejected() -> None:
    a = agent("a1", "writer")
    # the reference accepted the same agent twice as an agent_to_agent session
    err = raises(lambda: session("agent_to_agent", [a, a]))
    assert str(err) == (
        "participants must be distinct: participant_id 'a1' appears more than once"
    )
    assert err.field == "participants"
    err = raises(lambda: session("user_to_mc", [user("x"), mc("x")]))
    assert "'x' appears more than once" in str(err)


def test_participants_must_be_participant_objects() -> None:
    err = raises(lambda: session("user_to_mc", [user(), {"participant_id": "m"}]))
    assert str(err) == "participants[1] must be a ConversationParticipant, got dict"
    assert err.field == "participants"


def test_participants_tuple_becomes_list() -> None:
    s = session("user_to_mc", (user(), mc()))  # type: ignore[arg-type]
    assert isinstance(s.participants, list)


@pytest.mark.parametrize("name", ["created_at", "last_activity"])
def test_session_timestamp_type_checked(name: str) -> None:
    err = raises(lambda: session(**{name: 1700000000}))
    assert str(err) == f"{name} must be a datetime or an ISO 8601 string, got int"
    assert err.field == name
    err = raises(lambda: session(**{name: "yesterday"}))
    assert str(err) == f"{name} must be an ISO 8601 datetime, got 'yesterday'"
    assert err.field == name


def test_session_iso_string_timestamps_accepted() -> None:
    s = session(created_at="2024-01-02T03:04:05Z", last_activity="2024-01-02T05:04:05+02:00")
    assert s.created_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert s.last_activity == s.created_at
    assert s.last_activity.tzinfo is UTC


def test_session_metadata_must_be_a_dict() -> None:
    err = raises(lambda: session(metadata="x"))
    assert str(err) == "metadata must be a dict, got str"


def test_session_revision_is_not_part_of_equality_or_dict() -> None:
    a = session(revision=3)
    b = session()
    assert a == b
    assert a.revision == 3
    assert "revision" not in a.to_dict()
    assert "revision" not in repr(a)


def test_get_participant_by_type_and_role_returns_first_match() -> None:
    first, second = agent("a1", "writer"), agent("a2", "writer")
    s = session("agent_to_agent", [mc(), first, second])
    assert s.get_participant_by_type_and_role("agent") is first
    assert s.get_participant_by_type_and_role("agent", "writer") is first
    assert s.get_participant_by_type_and_role(ParticipantType.AGENT) is first
    assert s.get_participant_by_type_and_role("agent", "critic") is None
    assert s.get_participant_by_type_and_role("user") is None


def test_update_activity_is_aware_utc_now() -> None:
    s = session()
    before = datetime.now(UTC)
    s.update_activity()
    assert s.last_activity.tzinfo is UTC
    assert before <= s.last_activity <= datetime.now(UTC)


def test_validate_after_mutation() -> None:
    s = session()
    s.participants = [user()]
    err = raises(s.validate)
    assert str(err) == "user_to_mc session requires user and master_controller participants"
    p = user()
    p.participant_type = "alien"
    assert raises(p.validate).field == "participant_type"


# --------------------------------------------------------------------------- message rules


@pytest.mark.parametrize("empty", ["", None])
def test_empty_message_id_replaced_by_uuid4(empty: str | None) -> None:
    m1, m2 = message(message_id=empty), message(message_id=empty)
    assert uuid.UUID(m1.message_id).version == 4
    assert str(uuid.UUID(m1.message_id)) == m1.message_id
    assert m1.message_id != m2.message_id


def test_given_message_id_kept() -> None:
    assert message(message_id="abc").message_id == "abc"


@pytest.mark.parametrize("name", ["session_key", "sender_id", "recipient_id", "content"])
@pytest.mark.parametrize("empty", ["", None])
def test_message_required_fields(name: str, empty: str | None) -> None:
    err = raises(lambda: message(**{name: empty}))
    assert str(err) == f"{name} cannot be empty"
    assert err.field == name


@pytest.mark.parametrize("name", ["session_key", "sender_id", "recipient_id", "content"])
def test_message_text_fields_must_be_strings(name: str) -> None:
    err = raises(lambda: message(**{name: 42}))
    assert str(err) == f"{name} must be a string, got int"


def test_whitespace_content_is_accepted() -> None:
    assert message(content="   ").content == "   "


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_all_ten_message_types_accepted(message_type: str) -> None:
    m = message(message_type=message_type)
    assert m.message_type == message_type
    assert isinstance(m.message_type, MessageType)


def test_unknown_message_type() -> None:
    err = raises(lambda: message(message_type="chat"))
    assert str(err) == f"message_type must be one of {MESSAGE_TYPES}, got 'chat'"
    assert err.field == "message_type"
    assert err.allowed == tuple(MESSAGE_TYPES)


@pytest.mark.parametrize("name", ["sender_type", "recipient_type"])
def test_sender_and_recipient_type_checked(name: str) -> None:
    err = raises(lambda: message(**{name: "alien"}))
    assert str(err) == (
        f"{name} must be one of ['agent', 'master_controller', 'user'], got 'alien'"
    )
    assert err.field == name
    assert err.allowed == tuple(PARTICIPANT_TYPES)


@pytest.mark.parametrize("name", ["sender_role", "recipient_role"])
def test_roles_must_be_strings(name: str) -> None:
    err = raises(lambda: message(**{name: 3}))
    assert str(err) == f"{name} must be a string or None, got int"


@pytest.mark.parametrize("bad", [1700000000, 1.5, b"2024-01-01", ["2024"]])
def test_bad_timestamp_type_rejected_at_construction(bad: object) -> None:
    err = raises(lambda: message(timestamp=bad))
    assert str(err) == (
        f"timestamp must be a datetime or an ISO 8601 string, got {type(bad).__name__}"
    )
    assert err.field == "timestamp"


def test_iso_string_timestamps_accepted() -> None:
    assert message(timestamp="2024-01-02T03:04:05.678901").timestamp == T0
    assert message(timestamp="2024-01-02T03:04:05.678901Z").timestamp == T0
    assert message(timestamp="2024-01-02T04:04:05.678901+01:00").timestamp == T0
    assert message(timestamp="2024-01-02T04:04:05.678901+01:00").timestamp.tzinfo is UTC
    assert str(raises(lambda: message(timestamp="soon"))) == (
        "timestamp must be an ISO 8601 datetime, got 'soon'"
    )


def test_message_metadata_must_be_a_dict() -> None:
    assert raises(lambda: message(metadata=None)).field == "metadata"


def test_message_role_and_routing_metadata() -> None:
    m = message(metadata={"message_id": "user-supplied", "x": 1})
    d = m.to_conversation_message_dict()
    assert d["role"] == "master_controller"
    assert d["metadata"]["message_id"] == "m-1"  # routing keys win, as in the spec
    assert d["metadata"]["x"] == 1
    assert list(d) == ["role", "content", "timestamp", "metadata"]
    m2 = message(sender_type="agent", sender_role="writer")
    assert m2.role == "agent_writer"
    assert message(sender_type="user").role == "user"


def test_all_errors_are_value_errors() -> None:
    for make in (
        lambda: ConversationParticipant("", "user"),
        lambda: session(participants=[]),
        lambda: message(content=""),
    ):
        with pytest.raises(ValueError):
            make()
        err = raises(make)
        assert isinstance(err, ValueError)
        assert isinstance(err, ConvstoreError)


# --------------------------------------------------------------------------- datetime policy


def test_naive_datetime_is_labelled_utc_not_shifted() -> None:
    naive = datetime(2024, 1, 2, 3, 4, 5, 678901)
    assert to_utc(naive) == T0
    assert to_utc(naive).tzinfo is UTC
    s = session(created_at=naive, last_activity=naive)
    assert (s.created_at.hour, s.created_at.tzinfo) == (3, UTC)
    assert message(timestamp=naive).timestamp == T0


def test_other_zones_are_converted_to_utc() -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    local = datetime(2024, 1, 2, 8, 34, 5, 678901, tzinfo=india)
    s = session(created_at=local, last_activity=local)
    assert s.created_at == T0
    assert s.created_at.tzinfo is UTC
    assert (s.created_at.hour, s.created_at.minute) == (3, 4)
    assert s.to_dict()["created_at"] == "2024-01-02T03:04:05.678901+00:00"


def test_utc_aware_datetimes_are_kept() -> None:
    assert to_utc(T0) is T0
    assert to_utc(T0.replace(tzinfo=timezone.utc)).tzinfo is UTC  # noqa: UP017


def test_to_utc_rejects_out_of_range_conversions() -> None:
    edge = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
    err = raises(lambda: to_utc(edge, "created_at"))
    assert err.field == "created_at"
    assert str(err).startswith("created_at is out of range once converted to UTC")
    assert raises(lambda: message(timestamp="9999-12-31T23:59:59-05:00")).field == "timestamp"


def test_utc_now_is_aware() -> None:
    now = utc_now()
    assert now.tzinfo is UTC
    assert abs((now - datetime.now(UTC)).total_seconds()) < 5


@given(datetimes)
@PROPERTY
def test_model_datetimes_are_always_aware_utc(value: datetime) -> None:
    s = session(created_at=value, last_activity=value)
    m = message(timestamp=value)
    for out in (s.created_at, s.last_activity, m.timestamp):
        assert out.tzinfo is UTC
        if value.tzinfo is None:
            assert out.replace(tzinfo=None) == value
        else:
            assert out == value


# --------------------------------------------------------------------------- enums, repr, copies


def test_enums_equal_plain_strings() -> None:
    p = agent()
    assert p.participant_type == "agent"
    assert "agent" == p.participant_type
    assert isinstance(p.participant_type, str)
    assert hash(p.participant_type) == hash("agent")
    assert {"agent": 1}[p.participant_type] == 1
    assert f"{p.participant_type}" == "agent"
    assert str(p.participant_type) == "agent"
    assert SessionType.USER_TO_MC == "user_to_mc"
    assert MessageType.FEEDBACK == "feedback"
    assert [t.value for t in ParticipantType] == ["user", "master_controller", "agent"]
    s = session()
    assert s.session_type == "user_to_mc"
    m = message()
    assert (m.sender_type, m.recipient_type, m.message_type) == (
        "master_controller", "agent", "task_assignment"
    )


def test_repr_shows_plain_strings() -> None:
    assert repr(agent()) == (
        "ConversationParticipant(participant_id='agent_1', participant_type='agent', "
        "participant_role='writer', metadata={})"
    )
    assert repr(ParticipantType.USER) == "'user'"
    assert "session_type='user_to_mc'" in repr(session())
    text = repr(message())
    assert "sender_type='master_controller'" in text
    assert "message_type='task_assignment'" in text
    assert "ParticipantType" not in text and "MessageType" not in text


def test_to_dict_values_are_plain_json() -> None:
    for obj in (agent(), session("agent_to_agent"), message()):
        d = obj.to_dict()
        assert json.loads(json.dumps(d)) == d
        for key in ("participant_type", "session_type", "sender_type", "message_type"):
            if key in d:
                assert type(d[key]) is str


def test_to_dict_returns_deep_copies() -> None:
    p = user(metadata={"tags": ["a"], "nested": {"k": 1}})
    d = p.to_dict()
    d["metadata"]["tags"].append("b")
    d["metadata"]["nested"]["k"] = 2
    assert p.metadata == {"tags": ["a"], "nested": {"k": 1}}

    s = session(participants=[p, mc()], metadata={"list": [1]})
    sd = s.to_dict()
    sd["metadata"]["list"].append(2)
    sd["participants"][0]["metadata"]["tags"].clear()
    assert s.metadata == {"list": [1]}
    assert p.metadata["tags"] == ["a"]

    m = message(metadata={"deep": {"x": [1]}})
    md = m.to_dict()
    md["metadata"]["deep"]["x"].append(2)
    cd = m.to_conversation_message_dict()
    cd["metadata"]["deep"]["x"].append(3)
    assert m.metadata == {"deep": {"x": [1]}}


def test_from_dict_copies_its_input() -> None:
    d = session(metadata={"list": [1]}, participants=[user(metadata={"a": [1]}), mc()]).to_dict()
    s = ConversationSession.from_dict(d)
    d["metadata"]["list"].append(2)
    d["participants"][0]["metadata"]["a"].append(2)
    assert s.metadata == {"list": [1]}
    assert s.participants[0].metadata == {"a": [1]}
    md = message(metadata={"x": [1]}).to_dict()
    m = AgentCommunicationMessage.from_dict(md)
    md["metadata"]["x"].append(2)
    assert m.metadata == {"x": [1]}


def test_to_dict_exact_keys() -> None:
    assert list(agent().to_dict()) == [
        "participant_id", "participant_type", "participant_role", "metadata"
    ]
    assert list(session().to_dict()) == [
        "session_id", "participants", "session_type", "created_at", "last_activity", "metadata"
    ]
    assert list(message().to_dict()) == [
        "message_id", "session_key", "sender_id", "sender_type", "sender_role", "recipient_id",
        "recipient_type", "recipient_role", "content", "message_type", "timestamp", "metadata",
    ]


def test_from_dict_missing_keys_and_non_mappings() -> None:
    err = raises(lambda: ConversationParticipant.from_dict({"participant_id": "p"}))
    assert str(err) == "ConversationParticipant.from_dict: missing key 'participant_type'"
    assert err.field == "participant_type"
    d = session().to_dict()
    del d["last_activity"]
    assert str(raises(lambda: ConversationSession.from_dict(d))) == (
        "ConversationSession.from_dict: missing key 'last_activity'"
    )
    md = message().to_dict()
    del md["content"]
    assert raises(lambda: AgentCommunicationMessage.from_dict(md)).field == "content"
    err = raises(lambda: ConversationParticipant.from_dict(["p", "user"]))  # type: ignore[arg-type]
    assert str(err) == "ConversationParticipant.from_dict needs a mapping, got list"
    bad = session().to_dict()
    bad["participants"] = "u,m"
    assert str(raises(lambda: ConversationSession.from_dict(bad))) == (
        "participants must be a list, got str"
    )


def test_from_dict_ignores_unknown_keys_and_optional_ones() -> None:
    d = {"participant_id": "a", "participant_type": "agent", "participant_role": "w", "x": 1}
    assert ConversationParticipant.from_dict(d) == agent("a", "w")
    assert ConversationParticipant.from_dict(
        {"participant_id": "u", "participant_type": "user"}
    ) == user("u")
    sd = {**session().to_dict(), "version": "9.9", "extra": {"x": 1}}
    del sd["metadata"]
    assert ConversationSession.from_dict(sd) == session()
    md = message().to_dict()
    for key in ("sender_role", "recipient_role", "metadata"):
        del md[key]
    m = AgentCommunicationMessage.from_dict(md)
    assert (m.sender_role, m.recipient_role, m.metadata) == (None, None, {})


def test_from_dict_validates() -> None:
    d = session().to_dict()
    d["participants"][1]["participant_type"] = "user"
    assert str(raises(lambda: ConversationSession.from_dict(d))) == (
        "user_to_mc session requires user and master_controller participants"
    )


@given(participants_st())
@PROPERTY
def test_participant_dict_round_trip(p: ConversationParticipant) -> None:
    d = p.to_dict()
    assert ConversationParticipant.from_dict(d) == p
    assert ConversationParticipant.from_dict(json.loads(json.dumps(d))) == p


@given(sessions_st())
@PROPERTY
def test_session_dict_round_trip(s: ConversationSession) -> None:
    d = s.to_dict()
    restored = ConversationSession.from_dict(d)
    assert restored == s
    assert restored.generate_session_key() == s.generate_session_key()
    assert ConversationSession.from_dict(json.loads(json.dumps(d))) == s


@given(messages_st())
@PROPERTY
def test_message_dict_round_trip(m: AgentCommunicationMessage) -> None:
    d = m.to_dict()
    assert AgentCommunicationMessage.from_dict(d) == m
    assert AgentCommunicationMessage.from_dict(json.loads(json.dumps(d))) == m


@given(messages_st())
@PROPERTY
def test_message_conversation_dict_round_trip(m: AgentCommunicationMessage) -> None:
    d = m.to_conversation_message_dict()
    assert AgentCommunicationMessage.from_conversation_message_dict(d, m.session_key) == m


# --------------------------------------------------------------------------- session keys


def spec_create_session_key(session_id, session_type, participants):  # the spec's code
    if session_type == 'user_to_mc':
        return session_id
    elif session_type == 'mc_to_agent':
        agent_role = next((p.participant_role for p in participants if p.participant_type == 'agent'), 'unknown')
        return f"{session_id}_mc_to_{agent_role}"
    elif session_type == 'agent_to_agent':
        agent_roles = [p.participant_role for p in participants if p.participant_type == 'agent']
        if len(agent_roles) >= 2:
            return f"{session_id}_{agent_roles[0]}_to_{agent_roles[1]}"
        return f"{session_id}_agent_to_agent"
    elif session_type == 'user_to_agent':
        agent_role = next((p.participant_role for p in participants if p.participant_type == 'agent'), 'unknown')
        return f"{session_id}_user_to_{agent_role}"
    else:
        return session_id


def spec_validate_conversation_isolation_pattern(session_key, expected_pattern):  # the spec's
    if expected_pattern == 'user_to_mc':
        # Should just be base session_id
        return '_' not in session_key or not any(x in session_key for x in ['_mc_to_', '_to_', '_user_to_'])
    elif expected_pattern == 'mc_to_agent':
        return '_mc_to_' in session_key
    elif expected_pattern == 'agent_to_agent':
        return '_to_' in session_key and '_mc_to_' not in session_key and '_user_to_' not in session_key
    elif expected_pattern == 'user_to_agent':
        return '_user_to_' in session_key
    else:
        return False


@pytest.mark.parametrize(
    ("session_type", "participants", "key"),
    [
        ("user_to_mc", [user(), mc()], "sess"),
        ("mc_to_agent", [mc(), agent("a", "writer"), agent("b", "critic")], "sess_mc_to_writer"),
        ("agent_to_agent", [agent("a", "writer"), agent("b", "researcher")],
         "sess_writer_to_researcher"),
        ("agent_to_agent", [agent("b", "researcher"), agent("a", "writer")],
         "sess_researcher_to_writer"),
        ("user_to_agent", [user(), agent("a", "writer")], "sess_user_to_writer"),
    ],
)  # fmt: skip
def test_generate_session_key(
    session_type: str, participants: list[ConversationParticipant], key: str
) -> None:
    s = session(session_type, participants)
    assert s.generate_session_key() == key
    assert create_session_key("sess", session_type, participants) == key


def test_create_session_key_fallbacks() -> None:
    assert create_session_key("s", "mc_to_agent", [mc()]) == "s_mc_to_unknown"
    assert create_session_key("s", "user_to_agent", [user()]) == "s_user_to_unknown"
    assert create_session_key("s", "agent_to_agent", [agent()]) == "s_agent_to_agent"
    assert create_session_key("s", "other", [agent()]) == "s"


@given(
    ids,
    st.sampled_from([*SESSION_TYPES, "other"]),
    st.lists(participants_st(), max_size=4),
)
@PROPERTY
def test_create_session_key_is_the_specs(
    session_id: str, session_type: str, participants: list[ConversationParticipant]
) -> None:
    assert create_session_key(session_id, session_type, participants) == spec_create_session_key(
        session_id, session_type, participants
    )


@pytest.mark.parametrize(
    ("key", "pattern", "expected"),
    [
        ("session_001_user_to_data_analyst", "user_to_agent", True),
        ("session_001_user_to_data_analyst", "mc_to_agent", False),
        ("session_002_mc_to_writer", "mc_to_agent", True),
        ("session_001", "user_to_mc", True),
        ("nounderscore", "user_to_mc", True),
        ("a_b", "user_to_mc", True),
        # the reference's documented quirks, kept result-for-result
        ("path_to_file", "agent_to_agent", True),
        ("path_to_file", "user_to_mc", False),
        ("my_mc_to_do", "mc_to_agent", True),
        ("x_user_to_y_mc_to_z", "mc_to_agent", True),
        ("x_user_to_y_mc_to_z", "user_to_agent", True),
        ("x_user_to_y_mc_to_z", "agent_to_agent", False),
        ("sess_agent_to_agent", "agent_to_agent", True),
        ("sess_writer_to_researcher", "agent_to_agent", True),
        ("sess_mc_to_writer", "agent_to_agent", False),
        ("sess_mc_to_writer", "user_to_mc", False),
        ("sess", "unknown_pattern", False),
        ("sess", "", False),
    ],
)
def test_validate_conversation_isolation_pattern(key: str, pattern: str, expected: bool) -> None:
    assert validate_conversation_isolation_pattern(key, pattern) is expected


@given(
    st.text(alphabet="_tomcuseragx", max_size=20),
    st.sampled_from([*SESSION_TYPES, "other"]),
)
@settings(max_examples=300, deadline=None)
def test_isolation_pattern_is_the_specs(key: str, pattern: str) -> None:
    assert validate_conversation_isolation_pattern(key, pattern) == (
        spec_validate_conversation_isolation_pattern(key, pattern)
    )


def test_parse_session_key_documented_collision() -> None:
    one = session("agent_to_agent", [agent("a1", "b"), agent("a2", "c")], session_id="s_a")
    two = session("agent_to_agent", [agent("a1", "a_b"), agent("a2", "c")], session_id="s")
    assert one.generate_session_key() == two.generate_session_key() == "s_a_b_to_c"
    assert one.key_parse() != two.key_parse()
    assert parse_session_key("s_a_b_to_c") == (
        SessionKeyParse(SessionType.USER_TO_MC, "s_a_b_to_c", ()),
        SessionKeyParse(SessionType.AGENT_TO_AGENT, "s", ("a_b", "c")),
        SessionKeyParse(SessionType.AGENT_TO_AGENT, "s_a", ("b", "c")),
    )
    assert one.key_parse() in parse_session_key("s_a_b_to_c")
    assert two.key_parse() in parse_session_key("s_a_b_to_c")


def test_parse_session_key_user_to_mc_collision() -> None:
    plain = session("user_to_mc", session_id="s_mc_to_writer")
    routed = session("mc_to_agent", [mc(), agent("a", "writer")], session_id="s")
    assert plain.generate_session_key() == routed.generate_session_key() == "s_mc_to_writer"
    parses = parse_session_key("s_mc_to_writer")
    assert plain.key_parse() == ("user_to_mc", "s_mc_to_writer", ())
    assert routed.key_parse() == ("mc_to_agent", "s", ("writer",))
    assert plain.key_parse() in parses
    assert routed.key_parse() in parses


def test_parse_session_key_results() -> None:
    key = "session_002_mc_to_data_analyst"
    assert parse_session_key(key, "mc_to_agent") == (
        SessionKeyParse(SessionType.MC_TO_AGENT, "session_002", ("data_analyst",)),
    )
    assert parse_session_key(key, "user_to_agent") == ()
    assert parse_session_key(key, "user_to_mc") == (("user_to_mc", key, ()),)
    assert parse_session_key(key) == (
        ("user_to_mc", key, ()),
        ("mc_to_agent", "session_002", ("data_analyst",)),
        ("agent_to_agent", "session", ("002_mc", "data_analyst")),
        ("agent_to_agent", "session_002", ("mc", "data_analyst")),
    )
    assert parse_session_key("session_001_user_to_data_analyst", "user_to_agent") == (
        ("user_to_agent", "session_001", ("data_analyst",)),
    )
    assert parse_session_key("") == ()
    assert parse_session_key("_mc_to_") == (("user_to_mc", "_mc_to_", ()),)
    # a literal "agent_to_agent" key is just an agent_to_agent key with roles "agent", "agent"
    assert ("agent_to_agent", "sess", ("agent", "agent")) in parse_session_key(
        "sess_agent_to_agent"
    )
    parsed = parse_session_key("s_x_to_y")[1]
    assert isinstance(parsed.session_type, SessionType)
    assert (parsed.session_type, parsed.session_id, parsed.roles) == (
        "agent_to_agent", "s", ("x", "y")
    )


def test_parse_session_key_rejects_unknown_types() -> None:
    err = raises(lambda: parse_session_key("s", "group"))
    assert err.field == "session_type"
    assert err.allowed == tuple(SESSION_TYPES)


def test_key_parse_uses_the_roles_the_key_uses() -> None:
    assert session("user_to_mc", [user(), mc(), agent()]).key_parse() == ("user_to_mc", "sess", ())
    s = session("mc_to_agent", [mc(), agent("a", "w"), agent("b", "r")])
    assert s.key_parse() == ("mc_to_agent", "sess", ("w",))
    assert s.agent_roles == ("w", "r")
    s = session("agent_to_agent", [agent("a", "w"), agent("b", "r"), agent("c", "z")])
    assert s.key_parse() == ("agent_to_agent", "sess", ("w", "r"))


@given(sessions_st())
@PROPERTY
def test_every_session_key_parses_back_to_its_session(s: ConversationSession) -> None:
    key = s.generate_session_key()
    assert s.key_parse() in parse_session_key(key)
    assert s.key_parse() in parse_session_key(key, s.session_type)
    assert all(p.session_type == s.session_type for p in parse_session_key(key, s.session_type))


def _rebuild(parse: SessionKeyParse) -> str:
    agents = [ConversationParticipant(f"a{i}", "agent", r) for i, r in enumerate(parse.roles)]
    return create_session_key(parse.session_id, parse.session_type, agents)


@given(st.one_of(st.text(alphabet="ab_tomcuser", max_size=24), st.text(max_size=24)))
@settings(max_examples=300, deadline=None)
def test_every_parse_regenerates_the_key(key: str) -> None:
    parses = parse_session_key(key)
    assert len(set(parses)) == len(parses)
    for parse in parses:
        assert parse.session_id
        assert all(parse.roles)
        assert _rebuild(parse) == key


# --------------------------------------------------------------------------- monitoring


@pytest.fixture
def metrics() -> Iterator[list[tuple[str, float, dict[str, str]]]]:
    seen: list[tuple[str, float, dict[str, str]]] = []

    def hook(name: str, value: float, labels: Mapping[str, str]) -> None:
        seen.append((name, value, dict(labels)))

    previous = set_metrics_hook(hook)
    try:
        yield seen
    finally:
        set_metrics_hook(previous)


def test_metrics_hook_sees_creations(metrics: list[tuple[str, float, dict[str, str]]]) -> None:
    session("user_to_mc")
    message()
    created = [(name, labels) for name, _, labels in metrics]
    assert created == [
        ("models.created", {"model": "ConversationParticipant"}),
        ("models.created", {"model": "ConversationParticipant"}),
        ("models.created", {"model": "ConversationSession"}),
        ("models.created", {"model": "AgentCommunicationMessage"}),
    ]
    assert all(isinstance(value, float) and value >= 0 for _, value, _ in metrics)


def test_metrics_hook_sees_validation_failures(
    metrics: list[tuple[str, float, dict[str, str]]],
) -> None:
    with pytest.raises(ValidationError):
        ConversationParticipant("p", "alien")
    with pytest.raises(ValidationError):
        message(recipient_type="robot")
    with pytest.raises(ValidationError):
        ConversationSession("s", [user("u")], "user_to_mc", T0, T0)
    failures = [
        (value, labels) for name, value, labels in metrics if name == "models.validation_failed"
    ]
    assert failures == [
        (1.0, {"model": "ConversationParticipant", "field": "participant_type"}),
        (1.0, {"model": "AgentCommunicationMessage", "field": "recipient_type"}),
        (1.0, {"model": "ConversationSession", "field": "participants"}),
    ]


def test_set_metrics_hook_returns_previous() -> None:
    def first(name: str, value: float, labels: Mapping[str, str]) -> None:
        return None

    def second(name: str, value: float, labels: Mapping[str, str]) -> None:
        return None

    original = set_metrics_hook(first)
    try:
        assert set_metrics_hook(second) is first
        assert set_metrics_hook(None) is second
    finally:
        set_metrics_hook(original)


def test_raising_hook_does_not_break_models(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def broken(name: str, value: float, labels: Mapping[str, str]) -> None:
        calls.append(name)
        raise RuntimeError("exporter down")

    previous = set_metrics_hook(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="convstore"):
            p = agent("a", "w")
            s = session("mc_to_agent", [mc(), p])
            # a failing validation still raises the ValidationError, not the hook's error
            with pytest.raises(ValidationError, match="participant_id cannot be empty"):
                ConversationParticipant("", "user")
    finally:
        set_metrics_hook(previous)
    assert p.participant_id == "a"
    assert s.generate_session_key() == "sess_mc_to_w"
    assert calls == [
        "models.created",
        "models.created",
        "models.created",
        "models.validation_failed",
    ]
    messages = [r.getMessage() for r in caplog.records if r.name == "convstore"]
    assert "convstore metrics hook failed for models.created" in messages
    assert "convstore metrics hook failed for models.validation_failed" in messages


def test_validation_errors_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="convstore"), pytest.raises(ValidationError):
        ConversationParticipant("p", "alien")
    assert [r.getMessage() for r in caplog.records if r.name == "convstore"] == [
        "validation error in ConversationParticipant: participant_type must be one of "
        "['agent', 'master_controller', 'user'], got 'alien'"
    ]


def test_models_copy_and_compare() -> None:
    s = session("agent_to_agent")
    clone = copy.deepcopy(s)
    assert clone == s
    clone.participants[0].participant_role = "other"
    assert clone != s
