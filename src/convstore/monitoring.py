"""Counts, timings and structured log records: one callback seam, process-wide or per store.

There is no metrics backend here on purpose: install a hook with :func:`set_metrics_hook`
(every store) or ``ConversationStore(..., metrics_hook=...)`` (one store). The hook
receives ``(name, value, labels)``; names are listed in :data:`METRIC_NAMES`. The optional
exporters in :mod:`convstore.exporters` (OpenTelemetry, Prometheus) are such hooks.

Log records go to the ``convstore`` logger with stable attributes (``convstore_event``,
``convstore_operation``, ``convstore_outcome``, ``convstore_duration_ms``,
``convstore_error``, ``convstore_session``): a JSON formatter can read them directly. They
never carry a password (URLs pass through :func:`convstore.urls.redact_url`) nor a
session key (only its hash, as in the metrics).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping

__all__ = [
    "METRIC_NAMES",
    "OPERATION_LABELS",
    "MetricsHook",
    "emit",
    "get_metrics_hook",
    "key_hash",
    "log_event",
    "logger",
    "set_metrics_hook",
]

MetricsHook = Callable[[str, float, Mapping[str, str]], None]

#: ``models.created`` (value: seconds spent validating, label ``model``),
#: ``models.validation_failed`` (value 1, labels ``model`` and ``field``),
#: ``store.operation`` (value: seconds, labels :data:`OPERATION_LABELS`),
#: ``store.skipped`` (value 1 per damaged record a read skipped, label ``operation``).
METRIC_NAMES = ("models.created", "models.validation_failed", "store.operation", "store.skipped")

#: Labels of ``store.operation``: ``operation`` (the plan's name, e.g. ``append_messages``),
#: ``outcome`` (``ok``/``error``), ``error`` (the convstore error type, or ""),
#: ``session`` (a 16-hex hash of the session's Redis key, or ""), ``messages`` (messages
#: written or read, as text) and ``bytes`` (payload bytes sent and received, as text).
OPERATION_LABELS = ("operation", "outcome", "error", "session", "messages", "bytes")

logger = logging.getLogger("convstore")

_hook: MetricsHook | None = None


def set_metrics_hook(hook: MetricsHook | None) -> MetricsHook | None:
    """Install ``hook`` for every store (or remove it with None); returns the previous hook."""
    global _hook
    previous, _hook = _hook, hook
    return previous


def get_metrics_hook() -> MetricsHook | None:
    return _hook


def emit(
    name: str, value: float, labels: Mapping[str, str], *, store_hook: MetricsHook | None = None
) -> None:
    """Send one measurement to the store's hook and the process-wide one; a failing hook
    is logged, never raised into callers."""
    for hook in (store_hook, _hook):
        if hook is None:
            continue
        try:
            hook(name, value, labels)
        except Exception:  # a broken exporter must not break storage
            logger.exception("convstore metrics hook failed for %s", name)


def key_hash(redis_key: str | bytes) -> str:
    """A stable, non-reversible label for a session (its keys can hold personal data)."""
    raw = redis_key if isinstance(redis_key, bytes) else redis_key.encode()
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def log_event(level: int, event: str, fields: Mapping[str, object]) -> None:
    """One structured record: ``event`` and ``fields`` as ``convstore_*`` attributes."""
    if not logger.isEnabledFor(level):
        return
    text = " ".join(f"{k}={v}" for k, v in fields.items())
    extra = {"convstore_event": event, **{f"convstore_{k}": v for k, v in fields.items()}}
    logger.log(level, "%s %s", event, text, extra=extra)
