"""Counts and timings through ``logging`` and one user-supplied callback.

There is no metrics backend here on purpose: hook :func:`set_metrics_hook` to
Prometheus, OpenTelemetry or anything else. The hook receives
``(name, value, labels)``; names are listed in :data:`METRIC_NAMES`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

__all__ = ["METRIC_NAMES", "MetricsHook", "emit", "get_metrics_hook", "logger", "set_metrics_hook"]

MetricsHook = Callable[[str, float, Mapping[str, str]], None]

#: ``models.created`` (value: seconds spent validating, label ``model``),
#: ``models.validation_failed`` (value 1, labels ``model`` and ``field``),
#: ``store.operation`` (value: seconds, labels ``operation`` and ``outcome``),
#: ``store.skipped`` (value 1 per damaged record a read skipped, label ``operation``).
METRIC_NAMES = ("models.created", "models.validation_failed", "store.operation", "store.skipped")

logger = logging.getLogger("convstore")

_hook: MetricsHook | None = None


def set_metrics_hook(hook: MetricsHook | None) -> MetricsHook | None:
    """Install ``hook`` (or remove it with None); returns the previous hook."""
    global _hook
    previous, _hook = _hook, hook
    return previous


def get_metrics_hook() -> MetricsHook | None:
    return _hook


def emit(name: str, value: float, labels: Mapping[str, str]) -> None:
    """Send one measurement to the hook; a failing hook is logged, never raised into callers."""
    hook = _hook
    if hook is None:
        return
    try:
        hook(name, value, labels)
    except Exception:  # a broken exporter must not break storage
        logger.exception("convstore metrics hook failed for %s", name)
