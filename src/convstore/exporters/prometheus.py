"""Prometheus metrics of store operations through prometheus-client (``convstore[prometheus]``).

Metrics: ``convstore_operation_duration_seconds`` (histogram; labels ``operation``,
``outcome``), ``convstore_operations_total`` (``operation``, ``outcome``),
``convstore_errors_total`` (``operation``, ``error``), ``convstore_messages_total`` and
``convstore_bytes_total`` (``operation``). No per-session label: it would be unbounded.
Expose them as usual (``prometheus_client.start_http_server`` or your framework's route).
"""

from __future__ import annotations

from collections.abc import Mapping

from convstore.errors import ConfigurationError

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
except ImportError:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError(
        "the Prometheus exporter needs the 'prometheus' extra: pip install 'convstore[prometheus]'"
    ) from None

__all__ = ["PrometheusHook"]


class PrometheusHook:
    """A metrics hook feeding prometheus-client metrics registered in ``registry``.

    Create one per registry (the default: the global one); a second in the same registry
    is refused by prometheus-client (duplicated time series). Share it between stores.
    """

    def __init__(self, *, registry: CollectorRegistry = REGISTRY) -> None:
        self._duration = Histogram(
            "convstore_operation_duration_seconds",
            "convstore store operation latency",
            ["operation", "outcome"],
            registry=registry,
        )
        self._operations = Counter(
            "convstore_operations", "store operations", ["operation", "outcome"], registry=registry
        )
        self._errors = Counter(
            "convstore_errors", "failed store operations", ["operation", "error"], registry=registry
        )
        self._messages = Counter(
            "convstore_messages", "messages written or read", ["operation"], registry=registry
        )
        self._bytes = Counter(
            "convstore_bytes", "payload bytes written or read", ["operation"], registry=registry
        )

    def __call__(self, name: str, value: float, labels: Mapping[str, str]) -> None:
        if name != "store.operation":
            return
        operation, outcome = labels.get("operation", ""), labels.get("outcome", "")
        self._duration.labels(operation, outcome).observe(value)
        self._operations.labels(operation, outcome).inc()
        if outcome != "ok":
            self._errors.labels(operation, labels.get("error", "")).inc()
        messages, size = int(labels.get("messages") or 0), int(labels.get("bytes") or 0)
        if messages and outcome == "ok":  # a refused append stored nothing
            self._messages.labels(operation).inc(messages)
        if size:
            self._bytes.labels(operation).inc(size)
