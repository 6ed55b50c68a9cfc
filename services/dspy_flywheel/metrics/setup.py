"""Install the OpenTelemetry metrics SDK for a process: Prometheus ``/metrics`` and OTLP.

    setup_metrics("dspy-flywheel-collector", port=9464)   # in a service's composition root

- ``/metrics`` (Prometheus text format) on ``host:port`` when ``port`` is set (0 or None: off).
  A port already in use is logged and skipped: metrics are never a reason for a service to die.
- OTLP/HTTP export every ``OTEL_METRIC_EXPORT_INTERVAL`` ms (default 60000) when
  ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, unless
  ``OTEL_METRICS_EXPORTER=none`` (or a list without ``otlp``).

Once per process: a second call reuses the provider (and starts the HTTP server if the first
call had no port). Durations use second-scale histogram buckets.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Protocol

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry

from dspy_flywheel.telemetry import setup_tracing

log = logging.getLogger(__name__)

SECONDS_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900,
)  # fmt: skip
COUNT_BUCKETS = (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)


@dataclass
class _Installed:
    provider: MeterProvider
    registry: CollectorRegistry
    otlp: PeriodicExportingMetricReader | None
    port: int | None = None


_state: _Installed | None = None
_lock = threading.Lock()


def _otlp_wanted() -> bool:
    exporters = os.environ.get("OTEL_METRICS_EXPORTER", "otlp").replace(" ", "").split(",")
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return bool(endpoint) and "otlp" in exporters


def _views() -> list[View]:
    counts = ExplicitBucketHistogramAggregation(COUNT_BUCKETS)
    return [
        View(instrument_unit="s", aggregation=ExplicitBucketHistogramAggregation(SECONDS_BUCKETS)),
        View(instrument_unit="{token}", aggregation=counts),
        View(instrument_unit="{call}", aggregation=counts),
    ]


def _install(service_name: str) -> _Installed:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    registry = CollectorRegistry(auto_describe=True)
    readers: list[MetricReader] = [PrometheusMetricReader(registry=registry)]
    otlp = None
    if _otlp_wanted():
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        otlp = PeriodicExportingMetricReader(OTLPMetricExporter())
        readers.append(otlp)
    provider = MeterProvider(
        metric_readers=readers,
        resource=Resource.create({"service.name": service_name}),
        views=_views(),
    )
    metrics.set_meter_provider(provider)
    return _Installed(provider, registry, otlp)


def _serve(state: _Installed, host: str, port: int) -> None:
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, addr=host, registry=state.registry)
    except OSError as exc:
        log.warning("metrics endpoint http://%s:%d/metrics not started: %s", host, port, exc)
        return
    state.port = int(server.server_address[1])
    log.info("metrics on http://%s:%d/metrics", host, state.port)


def setup_metrics(
    service_name: str, port: int | None = None, host: str = "127.0.0.1"
) -> int | None:
    """Install the SDK once; serve ``/metrics`` on ``port`` when given. Returns the bound port."""
    global _state
    with _lock:
        if _state is None:
            if isinstance(metrics.get_meter_provider(), MeterProvider):
                log.info("a metrics SDK is already installed; dspy-flywheel leaves it alone")
                return None
            _state = _install(service_name)
        if port and _state.port is None:
            _serve(_state, host, port)
        return _state.port


def force_flush(timeout_ms: int = 10_000) -> None:
    """Send what was recorded over OTLP now (before a process exits, or in a test). Only the
    OTLP reader: a Prometheus reader would queue a second copy for the next scrape."""
    if _state is not None and _state.otlp is not None:
        _state.otlp.force_flush(timeout_ms)


class _ServiceSettings(Protocol):
    metrics_port: int | None
    metrics_host: str


def setup_telemetry(service_name: str, settings: _ServiceSettings) -> int | None:
    """A service's tracing and metrics SDKs (its entry point calls this once)."""
    setup_tracing(service_name)
    return setup_metrics(service_name, settings.metrics_port, settings.metrics_host)
