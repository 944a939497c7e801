"""Plugging the adapters into aiecs: ABC registration and the application-wide engine.

aiecs is never required: everything here imports it lazily and says so when it is absent.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

from convstore.adapters.contextengine.engine import ContextEngineStore
from convstore.adapters.contextengine.permanent import PermanentBackend
from convstore.errors import ConfigurationError

__all__ = ["install_into_aiecs", "install_permanent_backend_into_aiecs", "register_with_aiecs"]

logger = logging.getLogger("convstore.contextengine")

_CLIENT = "aiecs.infrastructure.persistence.context_engine_client"
_FACTORY = "aiecs.infrastructure.persistence.permanent_backend_factory"


def register_with_aiecs() -> bool:
    """Register the adapters as virtual subclasses of aiecs's storage ABCs, if aiecs imports.

    Called once at import; call it again after importing aiecs later. Returns whether the
    registration happened. aiecs is never required.
    """
    try:
        from aiecs.core.interface import storage_interface as si  # type: ignore[import-not-found]
    except ImportError:
        return False
    except Exception as exc:  # noqa: BLE001 - a broken aiecs install must not break convstore
        logger.debug("aiecs is installed but could not be imported: %s", exc)
        return False
    si.IStorageBackend.register(ContextEngineStore)
    si.ICheckpointerBackend.register(ContextEngineStore)
    si.IPermanentStorageBackend.register(PermanentBackend)
    return True


def _aiecs_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigurationError(f"aiecs is not importable ({exc}): pip install aiecs") from exc


def install_into_aiecs(engine: ContextEngineStore | None = None) -> ContextEngineStore:
    """Make aiecs's application-wide ContextEngine this one, in one line.

    After it, aiecs's ``initialize_context_engine()`` and ``get_context_engine()`` (used by
    ``aiecs.main`` and every component that asks for the global engine) return ``engine``
    (by default ``ContextEngineStore()``, configured from ``REDIS_URL`` or aiecs's
    ``REDIS_HOST``/``REDIS_PORT``/``REDIS_DB``/``REDIS_PASSWORD``), and
    ``close_context_engine()`` closes it. Call it before aiecs starts up.
    """
    module = _aiecs_module(_CLIENT)
    engine = engine if engine is not None else ContextEngineStore()
    setattr(module, "_global_context_engine", engine)  # noqa: B010 - aiecs keeps no setter
    setattr(module, "_initialized", True)  # noqa: B010
    return engine


def install_permanent_backend_into_aiecs(
    backend: PermanentBackend | None = None,
) -> PermanentBackend:
    """Make the permanent backend aiecs's own ContextEngine dual-writes to this one.

    aiecs builds it through ``permanent_backend_factory.create_permanent_backend()`` when
    ``initialize_context_engine()`` runs (instead of ``CONTEXT_PERMANENT_BACKEND``);
    call this before that. ``backend`` defaults to ``PermanentBackend(url=REDIS_URL)``.
    """
    module = _aiecs_module(_FACTORY)
    chosen = backend if backend is not None else PermanentBackend()
    setattr(module, "create_permanent_backend", lambda: chosen)  # noqa: B010
    return chosen
