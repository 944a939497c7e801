"""Optional metrics/trace exporters, each a :data:`convstore.monitoring.MetricsHook`.

``convstore.exporters.otel.OpenTelemetryHook`` needs ``convstore[otel]``;
``convstore.exporters.prometheus.PrometheusHook`` needs ``convstore[prometheus]``.
Install one process-wide (``set_metrics_hook``) or per store (``metrics_hook=``).
"""
