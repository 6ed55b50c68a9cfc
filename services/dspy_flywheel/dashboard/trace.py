"""A job's trace drawn on its page, read from Jaeger's query API (``/api/traces/<id>``).

The Go-module build of Jaeger in ``ops/stack`` has no React UI, so the dashboard shows the span
tree itself: each span with its service, start offset and duration, indented under its parent.
Without ``jaeger_url``, or when Jaeger does not answer, the page shows the trace id alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpanRow:
    depth: int
    name: str
    service: str
    start_ms: float  # from the trace's first span
    duration_ms: float


def span_rows(trace: dict[str, Any]) -> list[SpanRow]:
    """Jaeger's trace JSON as rows in tree order (children after their parent, by start)."""
    spans = {s["spanID"]: s for s in trace.get("spans", [])}
    services = {k: v.get("serviceName", "?") for k, v in trace.get("processes", {}).items()}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans.values():
        parents = [r["spanID"] for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
        parent = parents[0] if parents and parents[0] in spans else None
        children.setdefault(parent, []).append(span)
    start = min((s["startTime"] for s in spans.values()), default=0)
    rows: list[SpanRow] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s["startTime"]):
            rows.append(
                SpanRow(
                    depth,
                    span["operationName"],
                    services.get(span["processID"], "?"),
                    (span["startTime"] - start) / 1000,
                    span["duration"] / 1000,
                )
            )
            walk(span["spanID"], depth + 1)

    walk(None, 0)
    return rows


async def fetch_trace(jaeger_url: str | None, trace_id: str | None) -> list[SpanRow] | None:
    if not jaeger_url or not trace_id:
        return None
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            reply = await client.get(f"{jaeger_url.rstrip('/')}/api/traces/{trace_id}")
        if reply.status_code != 200:
            return None
        data = reply.json().get("data") or []
        return span_rows(data[0]) if data else None
    except (httpx.HTTPError, ValueError) as exc:
        log.info("trace %s not read from %s: %s", trace_id, jaeger_url, exc)
        return None
