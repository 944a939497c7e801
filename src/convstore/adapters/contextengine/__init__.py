"""aiecs's ContextEngine on convstore.

- :class:`ContextEngineStore` has the reference ContextEngine's method set (aiecs 2.2.0),
  names, signatures and JSON-shaped results; pass it where a ContextEngine goes.
- :class:`PermanentBackend` is aiecs's ``IPermanentStorageBackend``: a stock ContextEngine
  dual-writes into convstore.
- :func:`install_into_aiecs` / :func:`install_permanent_backend_into_aiecs` make them
  aiecs's application-wide engine or permanent backend in one line.

Modules: ``base`` (construction, live settings), ``sessions``, ``conversation``,
``compression``, ``checkpoints``, ``maintenance``, ``engine`` (the class), ``permanent``,
``aiecs`` (registration and install), ``shapes`` (the reference's value shapes).
"""

from convstore.adapters.contextengine.aiecs import (
    install_into_aiecs,
    install_permanent_backend_into_aiecs,
    register_with_aiecs,
)
from convstore.adapters.contextengine.base import (
    DEFAULT_CHECKPOINT_TTL,
    DEFAULT_CONVERSATION_LIMIT,
    DEFAULT_SESSION_TTL,
    ENGINE_ID,
    FROM_STORE,
    Summarizer,
)
from convstore.adapters.contextengine.compression import CompressionConfig
from convstore.adapters.contextengine.engine import ContextEngineStore
from convstore.adapters.contextengine.permanent import PermanentBackend
from convstore.plans.reference import naive_iso

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

register_with_aiecs()
