"""The spec's enumerations and the value rules every model applies: a choice is one of
its enum's values, datetimes are aware UTC, text fields are strings (``convstore.models``
builds its dataclasses on these)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from convstore.errors import ValidationError

__all__ = [
    "MessageType",
    "ParticipantType",
    "SessionType",
    "metadata_dict",
    "optional_text",
    "parse_choice",
    "require_text",
    "to_utc",
    "utc_now",
]


class _Choice(StrEnum):
    """A string enum whose repr is the plain string, so dataclass reprs read like the spec's."""

    def __repr__(self) -> str:
        return repr(self.value)


class ParticipantType(_Choice):
    USER = "user"
    MASTER_CONTROLLER = "master_controller"
    AGENT = "agent"


class SessionType(_Choice):
    USER_TO_MC = "user_to_mc"
    MC_TO_AGENT = "mc_to_agent"
    AGENT_TO_AGENT = "agent_to_agent"
    USER_TO_AGENT = "user_to_agent"


class MessageType(_Choice):
    TASK_ASSIGNMENT = "task_assignment"
    RESULT_REPORT = "result_report"
    COLLABORATION_REQUEST = "collaboration_request"
    FEEDBACK = "feedback"
    COMMUNICATION = "communication"
    STATUS_UPDATE = "status_update"
    ERROR_REPORT = "error_report"
    TASK_COMPLETION = "task_completion"
    PROGRESS_UPDATE = "progress_update"
    CLARIFICATION_REQUEST = "clarification_request"


E = TypeVar("E", bound=StrEnum)


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def to_utc(value: object, field_name: str = "timestamp") -> datetime:
    """Apply the datetime policy: aware UTC out; naive input is labelled UTC; ISO strings parsed."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(
                f"{field_name} must be an ISO 8601 datetime, got {value!r}", field=field_name
            ) from None
    if not isinstance(value, datetime):
        raise ValidationError(
            f"{field_name} must be a datetime or an ISO 8601 string, got {type(value).__name__}",
            field=field_name,
        )
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    if value.tzinfo is UTC:
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+05:00 has no UTC equivalent
        raise ValidationError(
            f"{field_name} is out of range once converted to UTC: {value.isoformat()}",
            field=field_name,
        ) from None


def require_text(value: object, field_name: str) -> str:
    """A non-empty str, else a ValidationError naming the field."""
    if not value:
        raise ValidationError(f"{field_name} cannot be empty", field=field_name)
    if not isinstance(value, str):
        raise ValidationError(
            f"{field_name} must be a string, got {type(value).__name__}", field=field_name
        )
    return value


def optional_text(value: object, field_name: str) -> str | None:
    """A str or None, else a ValidationError naming the field."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(
            f"{field_name} must be a string or None, got {type(value).__name__}", field=field_name
        )
    return value


def parse_choice(value: object, enum: type[E], field_name: str) -> E:
    """``value`` as a member of ``enum``, or a ValidationError listing the allowed values."""
    if isinstance(value, enum):
        return value
    allowed = sorted(member.value for member in enum)
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    raise ValidationError(
        f"{field_name} must be one of {allowed}, got {value!r}", field=field_name, allowed=allowed
    )


def metadata_dict(value: object, field_name: str = "metadata") -> dict[str, Any]:
    """A dict (metadata is free-form inside), else a ValidationError naming the field."""
    if not isinstance(value, dict):
        raise ValidationError(
            f"{field_name} must be a dict, got {type(value).__name__}", field=field_name
        )
    return value
