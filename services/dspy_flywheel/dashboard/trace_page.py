"""The trace page (``/dashboard/traces/<trace id>``): the span tree Jaeger returned, each span
with its service, start, duration (also as a bar on the trace's timeline) and attributes; a
linked span (the calls a trigger decision was made from) opens its own trace's page."""

from __future__ import annotations

from html import escape

from dspy_flywheel.dashboard.render import page
from dspy_flywheel.dashboard.trace import SpanRow, TraceView


def _attributes(row: SpanRow) -> str:
    items = "<br>".join(
        f"<span data-field='span-attr' data-key='{escape(k)}'>{escape(k)}={escape(v)}</span>"
        for k, v in row.attributes
    )
    links = []
    for link in row.links:
        trace_id, _, span_id = link.partition(":")
        href = f"/dashboard/traces/{escape(trace_id)}#{escape(span_id)}"
        links.append(f"<a data-field='span-link' href='{href}'>{escape(trace_id[:8])}</a>")
    if links:
        items += f"<br>links ({len(links)}): " + " ".join(links)
    return items


def _timeline(row: SpanRow, total_ms: float) -> str:
    scale = 100 / total_ms if total_ms > 0 else 0
    left = min(row.start_ms * scale, 100)
    width = max(min(row.duration_ms * scale, 100 - left), 0.3)
    colour = "#c33" if row.error else "#36c"
    return (
        f"<span class='bar' style='width:240px'><span style='margin-left:{left:.2f}%;"
        f"width:{width:.2f}%;background:{colour}'></span></span>"
    )


def _row(row: SpanRow, total_ms: float) -> str:
    cls = " class='alert'" if row.error else ""
    return (
        f"<tr id='{escape(row.span_id)}' data-field='span' data-span='{escape(row.span_id)}'{cls}>"
        f"<td style='padding-left:{0.6 + 1.2 * row.depth:.1f}rem' data-field='span-name'>"
        f"{escape(row.name)}</td><td data-field='span-service'>{escape(row.service)}</td>"
        f"<td data-field='span-start'>{row.start_ms:.1f}</td>"
        f"<td data-field='span-duration'>{row.duration_ms:.1f}</td>"
        f"<td>{_timeline(row, total_ms)}</td>"
        f"<td class='muted' style='text-align:left'>{_attributes(row)}</td></tr>"
    )


def render_trace(view: TraceView, refresh_s: int) -> str:
    nav = "<p><a href='/dashboard'>← dashboard</a></p>"
    head = f"<p>trace id <code data-field='trace-id'>{escape(view.trace_id)}</code></p>"
    if view.problem is not None:
        body = f"{nav}{head}<p class='alert' data-field='trace-problem'>{escape(view.problem)}</p>"
        return page("trace", body, refresh_s)
    total = view.duration_ms
    summary = (
        f"<p><span data-field='span-count'>{len(view.rows)}</span> spans over "
        f"<span data-field='trace-duration'>{total:.1f}</span> ms in "
        f"{escape(', '.join(view.services))}; read from Jaeger's query API</p>"
    )
    rows = "".join(_row(r, total) for r in view.rows)
    table = (
        "<table class='spans'><tr><th>span</th><th>service</th><th>start ms</th>"
        f"<th>duration ms</th><th>timeline</th><th>attributes</th></tr>{rows}</table>"
    )
    return page("trace", nav + head + summary + table, refresh_s)
