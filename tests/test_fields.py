"""Field lists come from the dataclasses, in one place (convstore.fields, convstore.models)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

from convstore import AgentCommunicationMessage, ConversationParticipant, ConversationSession
from convstore.fields import model_fields
from convstore.models import (
    ENTRY_KEYS,
    MESSAGE_FIELDS,
    PARTICIPANT_FIELDS,
    REQUIRED_ROUTING_KEYS,
    ROUTING_KEYS,
    SESSION_FIELDS,
    utc_now,
)


@dataclass
class _Toy:
    a: str
    b: str | None
    when: datetime
    c: int = 0
    d: dict[str, int] = field(default_factory=dict)
    extra: int = field(default=0, kw_only=True)


def test_model_fields_reads_the_dataclass() -> None:
    toy = model_fields(_Toy)
    assert toy.names == ("a", "b", "when", "c", "d")  # keyword-only extras are not spec fields
    assert toy.required == ("a", "when")  # b is Optional, c and d have defaults
    assert toy.defaulted == {"c", "d"}
    assert toy.datetimes == ("when",)


def test_the_models_constants_match_their_definitions() -> None:
    for cls, found in (
        (ConversationParticipant, PARTICIPANT_FIELDS),
        (ConversationSession, SESSION_FIELDS),
        (AgentCommunicationMessage, MESSAGE_FIELDS),
    ):
        assert found.names == tuple(f.name for f in dataclasses.fields(cls) if not f.kw_only)
    assert "revision" not in SESSION_FIELDS.names
    assert set(ROUTING_KEYS) == set(MESSAGE_FIELDS.names) - {*ENTRY_KEYS, "session_key"}
    assert REQUIRED_ROUTING_KEYS == ("sender_id", "sender_type", "recipient_id", "recipient_type")


def test_to_dict_keys_are_the_field_names_and_round_trip() -> None:
    now = utc_now()
    p = ConversationParticipant("a1", "agent", "writer", {"k": [1]})
    mc = ConversationParticipant("mc", "master_controller")
    s = ConversationSession("s", [mc, p], "mc_to_agent", now, now, {"x": 1})
    m = AgentCommunicationMessage(
        "m1", "s_mc_to_writer", "mc", "master_controller", None, "a1", "agent", "writer",
        "go", "task_assignment", now,
    )  # fmt: skip
    for obj, found in ((p, PARTICIPANT_FIELDS), (s, SESSION_FIELDS), (m, MESSAGE_FIELDS)):
        as_dict = obj.to_dict()
        assert tuple(as_dict) == found.names
        assert type(obj).from_dict(as_dict) == obj
    assert s.to_dict()["participants"][1] == p.to_dict()
    assert set(m.routing_metadata()) == set(ROUTING_KEYS)
