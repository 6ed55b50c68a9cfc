"""A small OTLP/HTTP metrics receiver for tests: decodes what exporters POST to /v1/metrics."""

from __future__ import annotations

import gzip
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)


def _points(metric: object) -> list[float]:
    """The values of a metric's data points (sum/gauge value, histogram count)."""
    kind = metric.WhichOneof("data")  # type: ignore[attr-defined]
    data = getattr(metric, kind)
    if kind == "histogram" or kind == "exponential_histogram":
        return [float(p.count) for p in data.data_points]
    return [float(p.as_double if p.HasField("as_double") else p.as_int) for p in data.data_points]


class OtlpMetricsReceiver:
    """``with OtlpMetricsReceiver() as rx:`` then point OTEL_EXPORTER_OTLP_METRICS_ENDPOINT at
    ``rx.endpoint``; ``rx.values[service][metric]`` holds the latest data points' values."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, list[float]]] = defaultdict(dict)
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/metrics":
                    self.send_error(404)
                    return
                receiver.take(ExportMetricsServiceRequest.FromString(body))
                reply = ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}/v1/metrics"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def take(self, request: ExportMetricsServiceRequest) -> None:
        with self._lock:
            self.requests += 1
            for resource in request.resource_metrics:
                attrs = {a.key: a.value.string_value for a in resource.resource.attributes}
                service = attrs.get("service.name", "?")
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        self.values[service][metric.name] = _points(metric)

    def snapshot(self) -> dict[str, dict[str, list[float]]]:
        with self._lock:
            return {service: dict(found) for service, found in self.values.items()}

    def __enter__(self) -> OtlpMetricsReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
