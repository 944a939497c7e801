"""OpenTelemetry: a span per store operation and its metrics (``convstore[otel]``).

The hook turns each ``store.operation`` measurement into a finished CLIENT span named
``convstore <operation>`` (attributes ``db.system.name``, ``convstore.operation``,
``convstore.outcome``, ``convstore.session.hash``, ``convstore.messages``,
``convstore.bytes``, and ``error.type`` on failure) and into these instruments:
``convstore.operation.duration`` (histogram, s), ``convstore.operations``,
``convstore.errors``, ``convstore.messages`` and ``convstore.bytes`` (counters).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from convstore.errors import ConfigurationError

try:
    from opentelemetry import metrics, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError(
        "the OpenTelemetry exporter needs the 'otel' extra: pip install 'convstore[otel]'"
    ) from None

__all__ = ["OpenTelemetryHook"]


def _version() -> str:
    from convstore import __version__

    return __version__


class OpenTelemetryHook:
    """A metrics hook that records spans and metrics through the OpenTelemetry API.

    ``tracer_provider`` / ``meter_provider`` default to the global ones.
    """

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        tracers = tracer_provider or trace.get_tracer_provider()
        meters = meter_provider or metrics.get_meter_provider()
        self._tracer = tracers.get_tracer("convstore", _version())
        meter = meters.get_meter("convstore", _version())
        self._duration = meter.create_histogram(
            "convstore.operation.duration", unit="s", description="store operation latency"
        )
        self._operations = meter.create_counter("convstore.operations", description="operations")
        self._errors = meter.create_counter("convstore.errors", description="failed operations")
        self._messages = meter.create_counter("convstore.messages", description="messages moved")
        self._bytes = meter.create_counter(
            "convstore.bytes", unit="By", description="payload bytes"
        )

    def __call__(self, name: str, value: float, labels: Mapping[str, str]) -> None:
        if name != "store.operation":
            return
        operation, outcome = labels.get("operation", ""), labels.get("outcome", "")
        messages, size = int(labels.get("messages") or 0), int(labels.get("bytes") or 0)
        end = time.time_ns()
        attributes: dict[str, str | int] = {
            "db.system.name": "redis",
            "convstore.operation": operation,
            "convstore.outcome": outcome,
            "convstore.session.hash": labels.get("session", ""),
            "convstore.messages": messages,
            "convstore.bytes": size,
        }
        error = labels.get("error", "")
        if error:
            attributes["error.type"] = error
        span = self._tracer.start_span(
            f"convstore {operation}",
            kind=SpanKind.CLIENT,
            start_time=end - int(value * 1e9),
            attributes=attributes,
        )
        if outcome != "ok":
            span.set_status(Status(StatusCode.ERROR, error or None))
        span.end(end_time=end)
        common = {"operation": operation, "outcome": outcome}
        self._duration.record(value, common)
        self._operations.add(1, common)
        if outcome != "ok":
            self._errors.add(1, {"operation": operation, "error": error})
        if messages and outcome == "ok":  # a refused append stored nothing
            self._messages.add(messages, {"operation": operation})
        if size:
            self._bytes.add(size, {"operation": operation})
