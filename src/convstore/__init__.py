"""convstore: multi-participant AI conversations in Redis.

Sessions live in hashes, histories in streams, everything is msgpack.
"""

from importlib import metadata as _metadata

from convstore.codec import (
    decode_entry,
    decode_message,
    decode_participant,
    decode_session,
    encode_entry,
    encode_message,
    encode_participant,
    encode_session,
)
from convstore.connections import ClientOptions, NoSocketTimeoutWarning
from convstore.errors import (
    AuthenticationFailed,
    ClusterError,
    CodecError,
    ConcurrentModification,
    ConfigurationError,
    ConvstoreError,
    DurabilityNotMet,
    DurabilityUnsupported,
    MessageNotFound,
    PermissionDenied,
    ProtocolError,
    SessionExists,
    SessionKeyConflict,
    SessionNotFound,
    StaleAppend,
    StoreError,
    StoreUnavailable,
    UnexpectedReply,
    ValidationError,
)
from convstore.follow import AsyncFollower, FollowedMessage, Follower
from convstore.health import (
    check_data_consistency,
    data_consistency_problems,
    model_health_problems,
    validate_models_health,
)
from convstore.inbox import AsyncInbox, AsyncInboxDelivery, Inbox, InboxDelivery
from convstore.keys import MAX_SESSION_KEY_LENGTH, KeySpace
from convstore.migration import (
    CURRENT_SCHEMA_VERSION,
    migrate_message_dict,
    migrate_models_to_new_version,
    migrate_participant_dict,
    migrate_session_dict,
)
from convstore.models import (
    AgentCommunicationMessage,
    ConversationParticipant,
    ConversationSession,
    MessageType,
    ParticipantType,
    SessionKeyParse,
    SessionType,
    create_session_key,
    parse_session_key,
    to_utc,
    utc_now,
    validate_conversation_isolation_pattern,
)
from convstore.monitoring import set_metrics_hook
from convstore.plans import (
    AppendResult,
    HistoryPage,
    Limits,
    Records,
    Retention,
    ServerInfo,
    SessionPage,
    StoredMessage,
)
from convstore.plans.config import InboxSettings
from convstore.plans.inbox import DeadLetter, GroupStatus, InboxStatus
from convstore.plans.inspect import Entry, SessionRetention
from convstore.policies import DEFAULT_RETRY, RetryPolicy, WriteConcern
from convstore.store import AsyncConversationStore, ConversationStore

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "DEFAULT_RETRY",
    "MAX_SESSION_KEY_LENGTH",
    "AgentCommunicationMessage",
    "AppendResult",
    "AsyncConversationStore",
    "AsyncFollower",
    "AsyncInbox",
    "AsyncInboxDelivery",
    "AuthenticationFailed",
    "ClientOptions",
    "ClusterError",
    "CodecError",
    "ConcurrentModification",
    "ConfigurationError",
    "ConversationParticipant",
    "ConversationSession",
    "ConversationStore",
    "ConvstoreError",
    "DeadLetter",
    "DurabilityNotMet",
    "DurabilityUnsupported",
    "Entry",
    "FollowedMessage",
    "Follower",
    "GroupStatus",
    "HistoryPage",
    "Inbox",
    "InboxDelivery",
    "InboxSettings",
    "InboxStatus",
    "KeySpace",
    "Limits",
    "MessageNotFound",
    "MessageType",
    "NoSocketTimeoutWarning",
    "ParticipantType",
    "PermissionDenied",
    "ProtocolError",
    "Records",
    "Retention",
    "RetryPolicy",
    "ServerInfo",
    "SessionExists",
    "SessionKeyConflict",
    "SessionKeyParse",
    "SessionNotFound",
    "SessionPage",
    "SessionRetention",
    "SessionType",
    "StaleAppend",
    "StoreError",
    "StoreUnavailable",
    "StoredMessage",
    "UnexpectedReply",
    "ValidationError",
    "WriteConcern",
    "check_data_consistency",
    "create_session_key",
    "data_consistency_problems",
    "decode_entry",
    "decode_message",
    "decode_participant",
    "decode_session",
    "encode_entry",
    "encode_message",
    "encode_participant",
    "encode_session",
    "migrate_message_dict",
    "migrate_models_to_new_version",
    "migrate_participant_dict",
    "migrate_session_dict",
    "model_health_problems",
    "parse_session_key",
    "set_metrics_hook",
    "to_utc",
    "utc_now",
    "validate_conversation_isolation_pattern",
    "validate_models_health",
]

try:  # the installed distribution's version: pyproject.toml is the one place it is written
    __version__: str = _metadata.version("convstore")
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
del _metadata
