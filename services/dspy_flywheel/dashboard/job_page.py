"""The page of one job: what it is, its status history, its trace id (linked to the trace
page)."""

from __future__ import annotations

from html import escape
from typing import Any

from dspy_flywheel.dashboard.charts import num, pct
from dspy_flywheel.dashboard.jobs import JobPage
from dspy_flywheel.dashboard.render import page

_FACTS = (
    ("worker", "worker_id"),
    ("status", "status"),
    ("optimizer", "optimizer"),
    ("reason", "reason"),
    ("requested by", "requested_by"),
    ("message", "message"),
    ("program version", "program_version"),
    ("created", "created_at"),
    ("finished", "finished_at"),
)


def _facts(job: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{label}</th>"
        f"<td data-field='job-{key}'>{escape(str(job.get(key) or ''))}</td></tr>"
        for label, key in _FACTS
    )
    scores = (
        f"<tr><th>progress</th><td data-field='job-progress'>{pct(job.get('progress'))}</td></tr>"
        f"<tr><th>holdout before → after</th><td>{pct(job.get('holdout_before'))} → "
        f"{pct(job.get('holdout_after'))}</td></tr>"
        f"<tr><th>LM calls / tokens / CPU s</th><td>{job.get('lm_calls') or 0} / "
        f"{job.get('tokens') or 0} / {num(job.get('cpu_s'), 1)}</td></tr>"
    )
    return f"<table>{rows}{scores}</table>"


def _history(found: JobPage) -> str:
    rows = "".join(
        f"<tr data-field='status-step'><td>{escape(s.at[:23])}</td><td>{escape(s.status)}</td>"
        f"<td>{pct(s.progress)}</td><td>{escape(s.message)}</td></tr>"
        for s in found.history
    )
    return (
        "<h2>Status history</h2><table><tr><th>at</th><th>status</th><th>progress</th>"
        f"<th>message</th></tr>{rows}</table>"
    )


def _trace(trace_id: str | None) -> str:
    if trace_id is None:
        return "<h2>Trace</h2><p>no trace context</p>"
    code = f"<code data-field='trace-id'>{escape(trace_id)}</code>"
    link = (
        f"<a data-field='trace-link' href='/dashboard/traces/{escape(trace_id)}'>"
        "its spans, read from Jaeger</a>"
    )
    return f"<h2>Trace</h2><p>trace id {code}: {link}</p>"


def render_job(found: JobPage, refresh_s: int) -> str:
    job_id = str(found.job.get("job_id"))
    body = (
        "<p><a href='/dashboard'>← dashboard</a></p>"
        + _facts(found.job)
        + _history(found)
        + _trace(found.trace_id)
    )
    return page(f"job {job_id}", body, refresh_s)
