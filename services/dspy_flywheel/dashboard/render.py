"""Server-rendered HTML: inline CSS and SVG only, nothing fetched from elsewhere, no JavaScript.

The pages reload themselves (``<meta http-equiv=refresh>``). Numbers carry ``data-field``
attributes (and ``data-worker`` / ``data-version`` / ``data-job``) so a browser test can read
each one and compare it with ``/api/v1/dashboard``.
"""

from __future__ import annotations

from html import escape
from typing import Any

from dspy_flywheel.dashboard.charts import MISSING, live_chart, num, pct, sparkline
from dspy_flywheel.dashboard.data import Overview, WorkerCard
from dspy_flywheel.dashboard.rollout import render_rollout

_STYLE = """body{font:14px system-ui,sans-serif;margin:2rem;color:#222}
.card{border:1px solid #ccc;border-radius:8px;padding:1rem;margin:1rem 0;max-width:1000px}
table{border-collapse:collapse}
td,th{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}.alert{color:#a00}.up{color:#070}.down{color:#a00}
.bar{display:inline-block;width:120px;height:.7rem;background:#eee;border-radius:3px}
.bar>span{display:block;height:100%;background:#36c;border-radius:3px}
.muted{color:#777;font-size:12px}
.spans td{vertical-align:top;white-space:nowrap}.spans td:last-child{white-space:normal}"""


def _gate(gate: dict[str, Any] | None) -> str:
    """The holdout gate's evidence for one version: gain, interval, paired counts."""
    if not gate or gate.get("interval") is None:
        return MISSING
    low, high = gate["interval"]
    return escape(
        f"{100 * gate['gain']:+.1f} pts [{100 * low:+.1f}, {100 * high:+.1f}] "
        f"{gate['confidence']:.0%}, n={gate['n']}, won {gate['b']} / lost {gate['c']}, "
        f"p={gate['p_value']:.2g}"
    )


def _field(name: str, text: str, **attrs: Any) -> str:
    extra = "".join(f" data-{k}='{escape(str(v))}'" for k, v in attrs.items())
    return f"<span data-field='{name}'{extra}>{text}</span>"


def page(title: str, body: str, refresh_s: int) -> str:
    refresh = f"<meta http-equiv='refresh' content='{refresh_s}'>" if refresh_s > 0 else ""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{refresh}"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}"
        f"<p class='muted'>refreshes every {refresh_s} s</p></body></html>"
    )


def _in_flight(jobs: list[dict[str, Any]]) -> str:
    if not jobs:
        return "<h2>Jobs in flight</h2><p data-field='in-flight-none'>none</p>"
    rows = "".join(
        f"<tr data-job='{escape(j['job_id'])}'><td><a href='/dashboard/jobs/{escape(j['job_id'])}'>"
        f"{escape(j['job_id'])}</a></td><td>{escape(j['worker_id'])}</td>"
        f"<td>{escape(j['optimizer'])}</td><td>{escape(j['status'])}</td>"
        f"<td><span class='bar'><span style='width:{100 * j['progress']:.0f}%'></span></span> "
        f"{_field('progress', pct(j['progress']), job=j['job_id'])}</td>"
        f"<td>{escape(j['message'])}</td></tr>"
        for j in jobs
    )
    return (
        "<h2>Jobs in flight</h2><table><tr><th>job</th><th>worker</th><th>optimizer</th>"
        f"<th>status</th><th>progress</th><th>step</th></tr>{rows}</table>"
    )


def _alerts(alerts: list[dict[str, Any]]) -> str:
    if not alerts:
        return "<h2>Recent alerts</h2><p>none</p>"
    items = "".join(
        f"<li class='alert' data-field='alert'>{escape(a['created_at'][:19])} "
        f"{escape(a.get('worker_id', ''))}: {escape(a.get('message', ''))}</li>"
        for a in alerts
    )
    return f"<h2>Recent alerts</h2><ul>{items}</ul>"


def _version_rows(card: WorkerCard) -> str:
    rows = []
    for v in card.versions:
        at = {"worker": card.worker_id, "version": v["version"]}
        job = v["job_id"] or ""
        rows.append(
            f"<tr><td>v{v['version']}</td><td>{escape(v['optimizer'])}</td>"
            f"<td>{_field('live-accuracy', pct(v['live_accuracy']), **at)} "
            f"<span class='muted'>({v['live_calls']})</span></td>"
            f"<td>{_field('holdout-before', pct(v['holdout_before']), **at)}</td>"
            f"<td>{_field('holdout-after', pct(v['holdout_after']), **at)}</td>"
            f"<td>{_field('roi-tokens', num(v['roi_points_per_1k_tokens']), **at)}</td>"
            f"<td>{_field('roi-cpu', num(v['roi_points_per_cpu_minute']), **at)}</td>"
            f"<td>{v['tokens'] or 0}</td><td>{num(v['cpu_s'], 1)}</td>"
            f"<td><a href='/dashboard/jobs/{escape(job)}'>{escape(job[:8])}</a></td>"
            f"<td class='muted'>{_gate(v.get('gate'))}</td></tr>"
        )
    code = card.live.get("by_version", {}).get("0")
    if code is not None:  # calls served by the program in the worker's code
        at = {"worker": card.worker_id, "version": 0}
        rows.insert(
            0,
            f"<tr><td>code</td><td></td><td>{_field('live-accuracy', pct(code['accuracy']), **at)}"
            f" <span class='muted'>({code['calls']})</span></td>" + "<td></td>" * 8 + "</tr>",
        )
    return (
        "<table><tr><th>version</th><th>optimizer</th><th>live</th><th>holdout before</th>"
        "<th>holdout after</th><th>ROI pts/1k tokens</th><th>ROI pts/CPU-min</th>"
        f"<th>tokens</th><th>CPU s</th><th>job</th><th>holdout gate</th></tr>{''.join(rows)}"
        "</table>"
    )


def _card(card: WorkerCard) -> str:
    gain = card.gain_points
    gain_cls = "up" if gain and gain > 0 else "down"
    gain_text = MISSING if gain is None else f"{gain:+.1f} points"
    jobs = ", ".join(f"{escape(k)} {v}" for k, v in sorted(card.jobs.items())) or "none"
    head = (
        f"<h2>{escape(card.worker_id)}</h2><p>holdout before → after: "
        f"<b>{pct(card.first_score)} → {pct(card.latest_score)}</b> "
        f"<span class='{gain_cls}'>({gain_text})</span> · ROI: "
        f"{_field('roi', num(card.roi_points_per_1k_tokens), worker=card.worker_id)}"
        f" points per 1k optimization tokens · jobs: {jobs}</p>"
    )
    trend = [v["holdout_after"] for v in card.versions if v["holdout_after"] is not None]
    alerts = "".join(f"<li class='alert'>{escape(a)}</li>" for a in card.alerts)
    return (
        f"<div class='card' data-worker='{escape(card.worker_id)}'>{head}"
        f"<h3>Live accuracy</h3>{live_chart(card.live)}"
        f"{render_rollout(card.rollout)}"
        f"<h3>Versions</h3>{_version_rows(card)}"
        f"<p class='muted'>holdout trend {sparkline(trend)}</p>"
        f"{'<ul>' + alerts + '</ul>' if alerts else ''}</div>"
    )


def render_overview(overview: Overview, refresh_s: int = 10) -> str:
    data = overview.as_dict()
    cards = "".join(_card(c) for c in overview.cards) or "<p>No optimized workers yet.</p>"
    body = _in_flight(data["in_flight"]) + _alerts(data["alerts"]) + cards
    return page("dspy-flywheel", body, refresh_s)
