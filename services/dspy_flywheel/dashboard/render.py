"""Server-rendered HTML: no JavaScript, an inline SVG line for the holdout trend."""

from __future__ import annotations

from html import escape
from typing import Any

from dspy_flywheel.dashboard.data import WorkerCard

_MISSING = "&ndash;"  # shown where a score or ratio is not known yet

_STYLE = """body{font:14px system-ui,sans-serif;margin:2rem;color:#222}
.card{border:1px solid #ccc;border-radius:8px;padding:1rem;margin:1rem 0;max-width:900px}
table{border-collapse:collapse}
td,th{padding:.25rem .75rem;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}.alert{color:#a00}.up{color:#070}.down{color:#a00}"""


def _pct(value: float | None) -> str:
    return _MISSING if value is None else f"{100 * value:.1f}%"


def _gate(gate: dict[str, Any] | None) -> str:
    """The holdout gate's evidence for one version: gain, interval, paired counts."""
    if not gate or gate.get("interval") is None:
        return _MISSING
    low, high = gate["interval"]
    return escape(
        f"{100 * gate['gain']:+.1f} pts [{100 * low:+.1f}, {100 * high:+.1f}] "
        f"{gate['confidence']:.0%}, n={gate['n']}, won {gate['b']} / lost {gate['c']}, "
        f"p={gate['p_value']:.2g}"
    )


def _sparkline(points: list[float], width: int = 240, height: int = 48) -> str:
    if len(points) < 2:
        return ""
    step = width / (len(points) - 1)
    coords = " ".join(f"{i * step:.1f},{height - p * height:.1f}" for i, p in enumerate(points))
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="holdout trend">'
        f'<polyline fill="none" stroke="#36c" stroke-width="2" points="{coords}"/></svg>'
    )


def _card(card: WorkerCard) -> str:
    gain = card.gain_points
    gain_cls = "up" if gain and gain > 0 else "down"
    gain_text = _MISSING if gain is None else f"{gain:+.1f} points"
    roi = card.roi_points_per_1k_tokens
    roi_text = _MISSING if roi is None else f"{roi:.2f}"
    head = (
        f"<h2>{escape(card.worker_id)}</h2><p>holdout before → after: "
        f"<b>{_pct(card.first_score)} → {_pct(card.latest_score)}</b> "
        f"<span class='{gain_cls}'>({gain_text})</span>"
        f" · ROI: {roi_text}"
        f" points per 1k optimization tokens · jobs: "
        + ", ".join(f"{escape(k)} {v}" for k, v in sorted(card.jobs.items()))
        + "</p>"
    )
    trend = [v["holdout_after"] for v in card.versions if v["holdout_after"] is not None]
    rows = "".join(
        f"<tr><td>v{v['version']}</td><td>{escape(v['optimizer'])}</td>"
        f"<td>{_pct(v['holdout_before'])}</td><td>{_pct(v['holdout_after'])}</td>"
        f"<td>{v['lm_calls'] or 0}</td><td>{v['tokens'] or 0}</td>"
        f"<td>{(v['wall_s'] or 0):.1f}</td><td>{_gate(v.get('gate'))}</td></tr>"
        for v in card.versions
    )
    table = (
        "<table><tr><th>version</th><th>optimizer</th><th>before</th><th>after</th>"
        f"<th>LM calls</th><th>tokens</th><th>wall s</th><th>holdout gate</th></tr>{rows}</table>"
    )
    alerts = "".join(f"<li class='alert'>{escape(a)}</li>" for a in card.alerts)
    return (
        f"<div class='card'>{head}{_sparkline(trend)}{table}"
        f"{'<ul>' + alerts + '</ul>' if alerts else ''}</div>"
    )


def render_page(cards: list[WorkerCard]) -> str:
    body = "".join(_card(c) for c in cards) or "<p>No optimized workers yet.</p>"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>dspy-flywheel</title>"
        f"<style>{_STYLE}</style></head><body><h1>dspy-flywheel</h1>{body}</body></html>"
    )
