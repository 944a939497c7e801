"""OpenTelemetry spans and metrics (in-memory exporters), Prometheus metrics (a registry),
per-store hooks, structured log records, and the client name in CLIENT LIST."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
import redis
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from convstore import ConversationStore, SessionNotFound
from convstore.exporters.otel import OpenTelemetryHook
from convstore.exporters.prometheus import PrometheusHook
from convstore.monitoring import key_hash


def _metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    points: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


def test_opentelemetry_spans_and_metrics(store: ConversationStore, make_session: Any) -> None:
    spans = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    store.metrics_hook = OpenTelemetryHook(
        tracer_provider=tracing, meter_provider=MeterProvider(metric_readers=[reader])
    )
    key = store.sessions.create(make_session("otel"))
    store.messages.append_many(key, [{"role": "user", "content": f"m{i}"} for i in range(3)])
    assert len(store.messages.history(key)) == 3
    with pytest.raises(SessionNotFound):
        store.messages.append("missing", {"role": "user", "content": "x"})
    finished = {
        s.name: s
        for s in spans.get_finished_spans()
        if s.attributes and s.attributes["convstore.outcome"] == "ok"
    }
    append = finished["convstore append_messages"]
    assert append.attributes is not None
    assert (
        append.attributes["convstore.messages"] == 3
        and append.attributes["convstore.outcome"] == "ok"
    )
    assert append.attributes["convstore.session.hash"] == key_hash(
        store.config.keyspace.session(key).session
    )
    assert int(append.attributes["convstore.bytes"]) > 0
    assert append.end_time is not None and append.start_time is not None
    assert append.end_time >= append.start_time
    assert finished["convstore history"].attributes["convstore.messages"] == 3  # type: ignore[index]
    failed = [
        s for s in spans.get_finished_spans() if s.attributes and s.attributes.get("error.type")
    ]
    assert [s.attributes["error.type"] for s in failed] == ["SessionNotFound"]  # type: ignore[index]
    assert not failed[0].status.is_ok
    points = _metric_points(reader)
    durations = {
        (p.attributes["operation"], p.attributes["outcome"]): p.count
        for p in points["convstore.operation.duration"]
    }
    assert durations[("append_messages", "ok")] == durations[("append_messages", "error")] == 1
    assert durations[("create_session", "ok")] == 1
    assert [p.value for p in points["convstore.errors"]] == [1]
    messages = {p.attributes["operation"]: p.value for p in points["convstore.messages"]}
    assert messages == {"append_messages": 3, "history": 3}
    assert all(p.value > 0 for p in points["convstore.bytes"])


def test_prometheus_metrics_from_the_registry(store: ConversationStore, make_session: Any) -> None:
    registry = CollectorRegistry()
    store.metrics_hook = PrometheusHook(registry=registry)
    key = store.sessions.create(make_session("prom"))
    store.messages.append_many(key, [{"role": "user", "content": "hi"}] * 2)
    store.messages.history(key)
    with pytest.raises(SessionNotFound):
        store.messages.count("missing")

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("convstore_operations_total", operation="append_messages", outcome="ok") == 1
    assert (
        value("convstore_operation_duration_seconds_count", operation="history", outcome="ok") == 1
    )
    assert value("convstore_messages_total", operation="append_messages") == 2
    assert value("convstore_messages_total", operation="history") == 2
    assert (value("convstore_bytes_total", operation="append_messages") or 0) > 0
    assert value("convstore_errors_total", operation="count", error="SessionNotFound") == 1


def test_hooks_are_per_store_and_process_wide(
    sync_client: redis.Redis, namespace: str, make_session: Any
) -> None:
    from convstore import set_metrics_hook

    seen_a: list[Mapping[str, str]] = []
    seen_global: list[str] = []
    a = ConversationStore(
        sync_client, namespace=namespace, metrics_hook=lambda n, v, labels: seen_a.append(labels)
    )
    b = ConversationStore(sync_client, namespace=namespace)
    previous = set_metrics_hook(lambda n, v, labels: seen_global.append(labels["operation"]))
    try:
        a.sessions.create(make_session("a"))
        b.ping()
    finally:
        set_metrics_hook(previous)
    assert [labels["operation"] for labels in seen_a] == ["create_session"]
    assert seen_global == ["create_session", "ping"]
    assert set(seen_a[0]) == {"operation", "outcome", "error", "session", "messages", "bytes"}


def test_structured_log_records_have_stable_fields_and_no_key(
    store: ConversationStore, make_session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="convstore"):
        store.sessions.create(make_session("secret-customer-name"))
        with pytest.raises(SessionNotFound):
            store.messages.count("nope")
    records = [
        r for r in caplog.records if getattr(r, "convstore_event", None) == "store.operation"
    ]
    ok = next(r for r in records if r.convstore_operation == "create_session")  # type: ignore[attr-defined]
    failed = next(r for r in records if r.convstore_outcome == "error")  # type: ignore[attr-defined]
    assert ok.levelno == logging.DEBUG and failed.levelno == logging.INFO
    assert failed.convstore_error == "SessionNotFound"  # type: ignore[attr-defined]
    assert isinstance(ok.convstore_duration_ms, float)  # type: ignore[attr-defined]
    assert all("secret-customer-name" not in r.getMessage() for r in records)


def test_client_name_and_library_in_client_list(real_url: str, namespace: str) -> None:
    store = ConversationStore.from_url(real_url, namespace=namespace)
    try:
        store.ping()
        info = store.server_info()
        mine = store.client.client_info()
        assert mine["name"] == ""  # opt-in: an ACL user may not be allowed CLIENT SETNAME
        if info.client_setinfo:  # CLIENT SETINFO: Redis / Valkey 7.2+
            assert "convstore_v" in mine["lib-name"]
        else:
            assert "lib-name" not in mine
        named = ConversationStore.from_url(
            real_url, namespace=namespace, client_name="billing-worker"
        )
        named.ping()
        assert named.client.client_info()["name"] == "billing-worker"
        named.close()
    finally:
        store.close()
