"""A trace read from Jaeger's query API (``/api/traces/<id>``), as rows of a span tree.

The Go-module build of Jaeger in ``ops/stack`` has no React UI (its assets are not in the Go
module), so the dashboard draws the trace itself (``trace_page``). ``read_trace`` asks Jaeger
server-side and says why when it has nothing to show: no ``jaeger_url`` configured, Jaeger not
answering, or no such trace (yet).
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)

TRACE_ID = re.compile(r"[0-9a-f]{32}|[0-9a-f]{16}")  # W3C (and Jaeger's 64-bit) trace ids


@dataclass(frozen=True)
class SpanRow:
    depth: int
    span_id: str
    name: str
    service: str
    start_ms: float  # from the trace's first span
    duration_ms: float
    attributes: tuple[tuple[str, str], ...] = ()  # the span's tags, in Jaeger's order
    links: tuple[str, ...] = ()  # "<trace id>:<span id>" of linked spans (FOLLOWS_FROM)
    error: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "attributes": dict(self.attributes), "links": list(self.links)}


@dataclass(frozen=True)
class TraceView:
    trace_id: str
    rows: list[SpanRow] = field(default_factory=list)
    problem: str | None = None  # why there are no rows
    status: int = 200  # the HTTP status the page answers with

    @property
    def duration_ms(self) -> float:
        return max((r.start_ms + r.duration_ms for r in self.rows), default=0.0)

    @property
    def services(self) -> list[str]:
        return sorted({r.service for r in self.rows})

    def as_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "problem": self.problem,
            "duration_ms": self.duration_ms,
            "services": self.services,
            "spans": [r.as_dict() for r in self.rows],
        }


def _tag_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _row(span: dict[str, Any], depth: int, service: str, start: int) -> SpanRow:
    tags = tuple((str(t["key"]), _tag_text(t.get("value"))) for t in span.get("tags", []))
    links = tuple(
        f"{r['traceID']}:{r['spanID']}"
        for r in span.get("references", [])
        if r.get("refType") != "CHILD_OF"
    )
    error = any(k == "error" and v == "true" for k, v in tags) or (
        ("otel.status_code", "ERROR") in tags
    )
    return SpanRow(
        depth,
        span["spanID"],
        span["operationName"],
        service,
        (span["startTime"] - start) / 1000,
        span["duration"] / 1000,
        tags,
        links,
        error,
    )


def span_rows(trace: dict[str, Any]) -> list[SpanRow]:
    """Jaeger's trace JSON as rows in tree order (children after their parent, by start); a
    span whose parent is not in the trace (not arrived, or in another trace) is a root."""
    spans = {s["spanID"]: s for s in trace.get("spans", [])}
    services = {k: v.get("serviceName", "?") for k, v in trace.get("processes", {}).items()}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans.values():
        parents = [
            r["spanID"]
            for r in span.get("references", [])
            if r.get("refType") == "CHILD_OF" and r.get("traceID") == span.get("traceID")
        ]
        parent = parents[0] if parents and parents[0] in spans else None
        children.setdefault(parent, []).append(span)
    start = min((s["startTime"] for s in spans.values()), default=0)
    rows: list[SpanRow] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: (s["startTime"], s["spanID"])):
            rows.append(_row(span, depth, services.get(span.get("processID", ""), "?"), start))
            walk(span["spanID"], depth + 1)

    walk(None, 0)
    return rows


async def read_trace(jaeger_url: str | None, trace_id: str) -> TraceView:
    """The trace's span tree from Jaeger; a view with ``problem`` set when there is none."""
    if not TRACE_ID.fullmatch(trace_id):
        return TraceView(
            trace_id, problem="not a trace id (16 or 32 lowercase hex digits)", status=400
        )
    if not jaeger_url:
        return TraceView(
            trace_id,
            problem="no trace backend: set FLYWHEEL_JAEGER_URL (or FLYWHEEL_MANAGER_JAEGER_URL)",
            status=503,
        )
    url = f"{jaeger_url.rstrip('/')}/api/traces/{trace_id}"
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            reply = await client.get(url)
        if reply.status_code == 404:
            return TraceView(trace_id, problem="Jaeger has no such trace (yet)", status=404)
        reply.raise_for_status()
        data = reply.json().get("data") or []
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        log.info("trace %s not read from %s: %s", trace_id, jaeger_url, exc)
        return TraceView(trace_id, problem=f"Jaeger did not answer: {exc}", status=502)
    rows = span_rows(data[0]) if data else []
    if not rows:
        return TraceView(trace_id, problem="Jaeger has no such trace (yet)", status=404)
    return TraceView(trace_id, rows)
