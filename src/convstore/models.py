"""The spec's conversation models: pure Python, no Redis, no I/O.

Field names, field order, defaults, valid values and generated session keys are
the spec's, so code written against its examples runs with only the import line
changed. What the reference implementation gets wrong is fixed here:

* **Datetimes** are timezone-aware UTC inside. A naive datetime is taken to be
  UTC (it is *labelled* UTC, not shifted); an aware one in another zone is
  converted to UTC; an ISO 8601 string is parsed the same way. Anything else is
  rejected at construction. ``datetime.utcnow`` is never used.
* **Errors** are :class:`convstore.errors.ValidationError` (a ``ValueError``) with
  the spec's message prefixes, the allowed values as a sorted list (never a set
  repr, so the text is the same in every process) and the offending value.
* ``to_dict`` returns deep copies; ``from_dict(x.to_dict()) == x`` for all three classes.
* ``sender_type``/``recipient_type`` are checked like ``participant_type``.
* The type fields hold :class:`enum.StrEnum` members, which compare equal to the
  spec's plain strings (``p.participant_type == "agent"``).

The enumerations and value rules are in ``convstore.model_values``, the session-key
functions in ``convstore.session_keys``; both are re-exported here, as the spec has them
in one module.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from convstore import monitoring
from convstore.errors import ValidationError
from convstore.fields import model_fields, plain, present
from convstore.model_values import (
    MessageType,
    ParticipantType,
    SessionType,
    metadata_dict,
    optional_text,
    parse_choice,
    require_text,
    to_utc,
    utc_now,
)
from convstore.session_keys import (
    SessionKeyParse,
    create_session_key,
    parse_session_key,
    validate_conversation_isolation_pattern,
)

__all__ = [
    "ENTRY_KEYS",
    "MESSAGE_FIELDS",
    "PARTICIPANT_FIELDS",
    "REQUIRED_ROUTING_KEYS",
    "ROUTING_KEYS",
    "SESSION_FIELDS",
    "AgentCommunicationMessage",
    "ConversationParticipant",
    "ConversationSession",
    "MessageType",
    "ParticipantType",
    "SessionKeyParse",
    "SessionType",
    "create_session_key",
    "parse_choice",
    "parse_session_key",
    "to_utc",
    "utc_now",
    "validate_conversation_isolation_pattern",
]


def _observed(model: str, validate: Callable[[], None]) -> None:
    """Run a model's validation, reporting its cost or its failure to monitoring."""
    started = time.perf_counter()
    try:
        validate()
    except ValidationError as exc:
        monitoring.emit("models.validation_failed", 1.0, {"model": model, "field": exc.field})
        if monitoring.logger.isEnabledFor(20):
            monitoring.logger.info("validation error in %s: %s", model, exc)
        raise
    monitoring.emit("models.created", time.perf_counter() - started, {"model": model})
    if monitoring.logger.isEnabledFor(10):
        monitoring.logger.debug("%s created", model)


def _missing(data: Mapping[str, Any], keys: Iterable[str], model: str) -> None:
    if not isinstance(data, Mapping):
        raise ValidationError(
            f"{model}.from_dict needs a mapping, got {type(data).__name__}", field="data"
        )
    for key in keys:
        if key not in data:
            raise ValidationError(f"{model}.from_dict: missing key {key!r}", field=key)


# --------------------------------------------------------------------------- participant


@dataclass
class ConversationParticipant:
    """Represents a participant in a conversation."""

    participant_id: str
    participant_type: str  # 'user', 'master_controller', 'agent'
    participant_role: str | None = None  # For agents: 'writer', 'researcher', etc.
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _observed("ConversationParticipant", self.validate)

    def validate(self) -> None:
        """Check (and normalise) every field; run again after mutating the object."""
        self.participant_id = require_text(self.participant_id, "participant_id")
        if not self.participant_type:
            raise ValidationError("participant_type cannot be empty", field="participant_type")
        self.participant_type = parse_choice(
            self.participant_type, ParticipantType, "participant_type"
        )
        self.participant_role = optional_text(self.participant_role, "participant_role")
        if self.participant_type == ParticipantType.AGENT and not self.participant_role:
            raise ValidationError(
                "participant_role is required for agent participants", field="participant_role"
            )
        self.metadata = metadata_dict(self.metadata)

    def to_dict(self) -> dict[str, Any]:
        return {name: plain(getattr(self, name)) for name in PARTICIPANT_FIELDS.names}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConversationParticipant:
        """Build from :meth:`to_dict` output; unknown keys are ignored (forward compatible)."""
        _missing(data, PARTICIPANT_FIELDS.required, cls.__name__)
        return cls(**present(data, PARTICIPANT_FIELDS))


PARTICIPANT_FIELDS = model_fields(ConversationParticipant)


# --------------------------------------------------------------------------- session

_REQUIRED_TYPES: dict[SessionType, tuple[ParticipantType, ...]] = {
    SessionType.USER_TO_MC: (ParticipantType.USER, ParticipantType.MASTER_CONTROLLER),
    SessionType.MC_TO_AGENT: (ParticipantType.MASTER_CONTROLLER, ParticipantType.AGENT),
    SessionType.USER_TO_AGENT: (ParticipantType.USER, ParticipantType.AGENT),
}


@dataclass
class ConversationSession:
    """Represents an isolated conversation session between participants.

    ``revision`` is not part of the spec: it is the store revision this copy was
    read at (0 = never stored), used for optimistic concurrency. It is keyword-only
    and takes no part in equality or ``to_dict``.
    """

    session_id: str
    participants: list[ConversationParticipant]
    session_type: str  # 'user_to_mc', 'mc_to_agent', 'agent_to_agent', 'user_to_agent'
    created_at: datetime
    last_activity: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
    revision: int = field(default=0, compare=False, repr=False, kw_only=True)

    def __post_init__(self) -> None:
        _observed("ConversationSession", self.validate)

    def validate(self) -> None:
        """Check (and normalise) every field; run again after mutating the object."""
        self.session_id = require_text(self.session_id, "session_id")
        if not self.participants:
            raise ValidationError("participants list cannot be empty", field="participants")
        if isinstance(self.participants, tuple):
            self.participants = list(self.participants)
        if not isinstance(self.participants, list):
            raise ValidationError(
                f"participants must be a list, got {type(self.participants).__name__}",
                field="participants",
            )
        seen: set[str] = set()
        for index, participant in enumerate(self.participants):
            if not isinstance(participant, ConversationParticipant):
                raise ValidationError(
                    f"participants[{index}] must be a ConversationParticipant, "
                    f"got {type(participant).__name__}",
                    field="participants",
                )
            participant.validate()  # catches participants mutated after construction
            if participant.participant_id in seen:
                raise ValidationError(
                    f"participants must be distinct: participant_id "
                    f"{participant.participant_id!r} appears more than once",
                    field="participants",
                )
            seen.add(participant.participant_id)
        if not self.session_type:
            raise ValidationError("session_type cannot be empty", field="session_type")
        self.session_type = parse_choice(self.session_type, SessionType, "session_type")
        self.created_at = to_utc(self.created_at, "created_at")
        self.last_activity = to_utc(self.last_activity, "last_activity")
        self.metadata = metadata_dict(self.metadata)
        self._validate_participants_for_session_type()

    def _validate_participants_for_session_type(self) -> None:
        """Validate that participants match session type (the spec's rules)."""
        types = {p.participant_type for p in self.participants}
        required = _REQUIRED_TYPES.get(SessionType(self.session_type))
        if required is not None and not set(required) <= types:
            names = " and ".join(str(t) for t in required)
            raise ValidationError(
                f"{self.session_type} session requires {names} participants", field="participants"
            )
        if self.session_type == SessionType.AGENT_TO_AGENT:
            agent_count = sum(1 for p in self.participants if p.participant_type == "agent")
            if agent_count < 2:
                raise ValidationError(
                    "agent_to_agent session requires at least 2 agent participants",
                    field="participants",
                )

    def generate_session_key(self) -> str:
        """Generate unique session key for conversation isolation (the spec's scheme)."""
        return create_session_key(self.session_id, self.session_type, self.participants)

    def get_participant_by_type_and_role(
        self, participant_type: str, participant_role: str | None = None
    ) -> ConversationParticipant | None:
        """First participant of that type (and role, when one is given)."""
        for participant in self.participants:
            if participant.participant_type == participant_type and (
                participant_role is None or participant.participant_role == participant_role
            ):
                return participant
        return None

    def update_activity(self) -> None:
        """Set ``last_activity`` to now (aware UTC)."""
        self.last_activity = utc_now()

    @property
    def agent_roles(self) -> tuple[str, ...]:
        """Roles of the agents in participant order: what the session key is built from."""
        return tuple(
            p.participant_role or "" for p in self.participants if p.participant_type == "agent"
        )

    def key_parse(self) -> SessionKeyParse:
        """This session's own reading of its key: the identity a store compares on conflicts."""
        session_type = SessionType(self.session_type)
        used = {SessionType.USER_TO_MC: 0, SessionType.AGENT_TO_AGENT: 2}.get(session_type, 1)
        return SessionKeyParse(session_type, self.session_id, self.agent_roles[:used])

    def to_dict(self) -> dict[str, Any]:
        return {name: plain(getattr(self, name)) for name in SESSION_FIELDS.names}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConversationSession:
        """Build from :meth:`to_dict` output; unknown keys are ignored (forward compatible)."""
        _missing(data, SESSION_FIELDS.required, cls.__name__)
        raw = data["participants"]
        if not isinstance(raw, list | tuple):
            raise ValidationError(
                f"participants must be a list, got {type(raw).__name__}", field="participants"
            )
        kwargs = present(data, SESSION_FIELDS)
        kwargs["participants"] = [ConversationParticipant.from_dict(p) for p in raw]
        return cls(**kwargs)


SESSION_FIELDS = model_fields(ConversationSession)

# --------------------------------------------------------------------------- message

#: The keys of a ContextEngine conversation message dict (a history entry).
ENTRY_KEYS = ("role", "content", "timestamp", "metadata")


@dataclass
class AgentCommunicationMessage:
    """Message for agent-to-agent or controller-to-agent communication."""

    message_id: str
    session_key: str
    sender_id: str
    sender_type: str  # 'master_controller', 'agent', 'user'
    sender_role: str | None  # For agents
    recipient_id: str
    recipient_type: str  # 'agent', 'master_controller', 'user'
    recipient_role: str | None  # For agents
    content: str
    message_type: str
    timestamp: datetime
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _observed("AgentCommunicationMessage", self.validate)

    def validate(self) -> None:
        """Check (and normalise) every field; an empty ``message_id`` gets a fresh uuid4."""
        if not self.message_id:
            self.message_id = str(uuid.uuid4())
        self.message_id = require_text(self.message_id, "message_id")
        self.session_key = require_text(self.session_key, "session_key")
        self.sender_id = require_text(self.sender_id, "sender_id")
        self.recipient_id = require_text(self.recipient_id, "recipient_id")
        self.content = require_text(self.content, "content")
        self.message_type = parse_choice(self.message_type, MessageType, "message_type")
        self.sender_type = parse_choice(self.sender_type, ParticipantType, "sender_type")
        self.recipient_type = parse_choice(self.recipient_type, ParticipantType, "recipient_type")
        self.sender_role = optional_text(self.sender_role, "sender_role")
        self.recipient_role = optional_text(self.recipient_role, "recipient_role")
        self.timestamp = to_utc(self.timestamp, "timestamp")
        self.metadata = metadata_dict(self.metadata)

    @property
    def role(self) -> str:
        """The ContextEngine role: ``"{sender_type}_{sender_role}"`` or ``sender_type``."""
        return (
            f"{self.sender_type}_{self.sender_role}" if self.sender_role else str(self.sender_type)
        )

    def routing_metadata(self) -> dict[str, Any]:
        """User metadata first, then the routing keys (which win, as in the spec)."""
        routing = {name: plain(getattr(self, name)) for name in ROUTING_KEYS}
        return {**copy.deepcopy(self.metadata), **routing}

    def to_conversation_message_dict(self) -> dict[str, Any]:
        """Convert to format compatible with ContextEngine conversation messages."""
        return {
            "role": self.role,
            "content": self.content,
            "timestamp": self.timestamp.isoformat(),
            "metadata": self.routing_metadata(),
        }

    @classmethod
    def from_conversation_message_dict(
        cls, data: Mapping[str, Any], session_key: str
    ) -> AgentCommunicationMessage:
        """Inverse of :meth:`to_conversation_message_dict` (routing keys come out of metadata)."""
        _missing(data, ("content", "timestamp", "metadata"), cls.__name__)
        meta = dict(data["metadata"])
        _missing(meta, REQUIRED_ROUTING_KEYS, cls.__name__)
        routing = {key: meta.pop(key, None) for key in ROUTING_KEYS}
        return cls(
            message_id=routing["message_id"] or "",
            session_key=session_key,
            sender_id=routing["sender_id"],
            sender_type=routing["sender_type"],
            sender_role=routing["sender_role"],
            recipient_id=routing["recipient_id"],
            recipient_type=routing["recipient_type"],
            recipient_role=routing["recipient_role"],
            content=data["content"],
            message_type=routing["message_type"] or MessageType.COMMUNICATION,
            timestamp=data["timestamp"],
            metadata=meta,
        )

    def to_dict(self) -> dict[str, Any]:
        return {name: plain(getattr(self, name)) for name in MESSAGE_FIELDS.names}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentCommunicationMessage:
        """Build from :meth:`to_dict` output; unknown keys are ignored (forward compatible)."""
        _missing(data, MESSAGE_FIELDS.required, cls.__name__)
        return cls(**present(data, MESSAGE_FIELDS))


MESSAGE_FIELDS = model_fields(AgentCommunicationMessage)
#: Message fields carried in a history entry's metadata: all but the entry's own keys and
#: the session key (the history they are stored in).
ROUTING_KEYS = tuple(n for n in MESSAGE_FIELDS.names if n not in (*ENTRY_KEYS, "session_key"))
#: Routing keys an entry must have to be an agent message: who sent it, to whom.
REQUIRED_ROUTING_KEYS = tuple(
    n
    for n in ROUTING_KEYS
    if n in MESSAGE_FIELDS.required and n.startswith(("sender_", "recipient_"))
)
