"""The ContextEngine adapter's import path since 0.1: see :mod:`convstore.adapters.contextengine`."""

from convstore.adapters.contextengine import (
    DEFAULT_CHECKPOINT_TTL,
    DEFAULT_CONVERSATION_LIMIT,
    DEFAULT_SESSION_TTL,
    ENGINE_ID,
    FROM_STORE,
    CompressionConfig,
    ContextEngineStore,
    PermanentBackend,
    Summarizer,
    install_into_aiecs,
    install_permanent_backend_into_aiecs,
    naive_iso,
    register_with_aiecs,
)

__all__ = [
    "DEFAULT_CHECKPOINT_TTL",
    "DEFAULT_CONVERSATION_LIMIT",
    "DEFAULT_SESSION_TTL",
    "ENGINE_ID",
    "FROM_STORE",
    "CompressionConfig",
    "ContextEngineStore",
    "PermanentBackend",
    "Summarizer",
    "install_into_aiecs",
    "install_permanent_backend_into_aiecs",
    "naive_iso",
    "register_with_aiecs",
]
