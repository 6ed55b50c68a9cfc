"""The dashboard's trace view: Jaeger's trace JSON as a span tree, and what the page says when
there is nothing to show. (Read back from a real Jaeger in tests/e2e/test_dashboard_browser.py.)"""

from __future__ import annotations

from typing import Any

from dspy_flywheel.dashboard.trace import TraceView, read_trace, span_rows
from dspy_flywheel.dashboard.trace_page import render_trace

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER = "0af7651916cd43dd8448eb211c80319c"


def _span(span_id: str, name: str, start: int, duration: int, **kw: Any) -> dict[str, Any]:
    refs = (
        [{"refType": "CHILD_OF", "traceID": TRACE, "spanID": kw["parent"]}]
        if "parent" in kw
        else []
    )
    refs += [
        {"refType": "FOLLOWS_FROM", "traceID": OTHER, "spanID": s} for s in kw.get("links", [])
    ]
    return {
        "traceID": TRACE,
        "spanID": span_id,
        "operationName": name,
        "references": refs,
        "startTime": start,
        "duration": duration,
        "tags": kw.get("tags", []),
        "processID": kw.get("process", "p1"),
    }


def _trace(spans: list[dict[str, Any]]) -> dict[str, Any]:
    processes = {
        "p1": {"serviceName": "dspy-flywheel-optimizer", "tags": []},
        "p2": {"serviceName": "dspy-flywheel-worker", "tags": []},
    }
    return {"traceID": TRACE, "spans": spans, "processes": processes}


# Given in an order unlike the tree's: the rows must not depend on it.
LIFECYCLE = _trace(
    [
        _span("c2", "optimization.publish", 1_900_000, 50_000, parent="a1"),
        _span(
            "d1",
            "dspy_flywheel.worker.reload",
            2_000_000,
            12_500,
            parent="c2",
            process="p2",
            tags=[{"key": "flywheel.reload.outcome", "type": "string", "value": "serving"}],
        ),
        _span(
            "a1",
            "optimization.job",
            1_000_000,
            1_200_000,
            links=["e1", "e2"],
            tags=[
                {"key": "flywheel.job_id", "type": "string", "value": "j-1"},
                {"key": "flywheel.gate.passed", "type": "bool", "value": True},
            ],
        ),
        _span(
            "c1",
            "optimization.compile",
            1_100_000,
            700_000,
            parent="a1",
            tags=[{"key": "otel.status_code", "type": "string", "value": "ERROR"}],
        ),
        _span("z9", "orphan", 1_050_000, 1_000, parent="missing"),
    ]
)


def test_rows_follow_the_tree_with_service_timing_and_attributes() -> None:
    rows = span_rows(LIFECYCLE)
    assert [(r.depth, r.name) for r in rows] == [
        (0, "optimization.job"),
        (1, "optimization.compile"),
        (1, "optimization.publish"),
        (2, "dspy_flywheel.worker.reload"),
        (0, "orphan"),  # its parent never arrived: shown as a root, not dropped
    ]
    job, compile_, _, reload_, _ = rows
    assert (reload_.service, reload_.start_ms, reload_.duration_ms) == (
        "dspy-flywheel-worker",
        1000.0,
        12.5,
    )
    assert reload_.attributes == (("flywheel.reload.outcome", "serving"),)
    assert job.attributes == (("flywheel.job_id", "j-1"), ("flywheel.gate.passed", "true"))
    assert job.links == (f"{OTHER}:e1", f"{OTHER}:e2")
    assert compile_.error
    assert not job.error
    assert TraceView(TRACE, rows).duration_ms == 1200.0


def test_page_shows_each_span_with_its_attributes_and_links() -> None:
    html = render_trace(TraceView(TRACE, span_rows(LIFECYCLE)), refresh_s=0)
    assert html.count("data-field='span' ") == 5
    assert "data-key='flywheel.reload.outcome'>flywheel.reload.outcome=serving<" in html
    assert html.count(f"href='/dashboard/traces/{OTHER}#") == 2
    assert "<span data-field='span-count'>5</span>" in html
    assert "dspy-flywheel-optimizer, dspy-flywheel-worker" in html


def test_markup_in_span_data_is_escaped() -> None:
    hostile = _trace(
        [_span("a1", "<script>x</script>", 0, 1, tags=[{"key": "k'<", "value": "<b>v</b>"}])]
    )
    html = render_trace(TraceView(TRACE, span_rows(hostile)), refresh_s=0)
    assert "<script>x" not in html
    assert "<b>v" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html


async def test_why_there_is_nothing_to_show() -> None:
    bad = await read_trace("http://127.0.0.1:1", "../api/services")
    assert (bad.status, bad.rows) == (400, [])
    unset = await read_trace(None, TRACE)
    assert unset.status == 503
    assert "FLYWHEEL_JAEGER_URL" in (unset.problem or "")
    page = render_trace(unset, refresh_s=5)
    assert "data-field='trace-problem'" in page
    assert "content='5'" in page
