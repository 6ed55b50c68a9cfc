"""Inline SVG charts: live accuracy over time with version markers, and a holdout sparkline;
and the number formats every page shares."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from html import escape
from typing import Any

from dspy_flywheel.cli import pct as percent

WIDTH, HEIGHT, PAD = 640, 160, 24
MISSING = "&ndash;"  # shown where a score or ratio is not known yet
pct = partial(percent, missing=MISSING)


def num(value: float | None, digits: int = 2) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def sparkline(points: list[float], width: int = 240, height: int = 48) -> str:
    if len(points) < 2:
        return ""
    step = width / (len(points) - 1)
    coords = " ".join(f"{i * step:.1f},{height - p * height:.1f}" for i, p in enumerate(points))
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="holdout trend">'
        f'<polyline fill="none" stroke="#36c" stroke-width="2" points="{coords}"/></svg>'
    )


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def live_chart(live: dict[str, Any]) -> str:
    """Accuracy of each point (y: 0-100 %) over time (x), a dashed line per version change."""
    points = live.get("points", [])
    if not points:
        return "<p class='muted' data-field='live-none'>no scored calls yet</p>"
    times = [_seconds(p["at"]) for p in points]
    start, span = min(times), max(max(times) - min(times), 1.0)

    def x(t: float) -> float:
        return PAD + (WIDTH - 2 * PAD) * (t - start) / span

    def y(accuracy: float) -> float:
        return HEIGHT - PAD - (HEIGHT - 2 * PAD) * accuracy

    pairs = list(zip(times, points, strict=True))
    dots = "".join(
        f"<circle cx='{x(t):.1f}' cy='{y(p['accuracy']):.1f}' r='2.5' fill='#36c' "
        f"data-field='live-point' data-version='{p['version']}' "
        f"data-accuracy='{p['accuracy']:.4f}'><title>v{p['version']}: "
        f"{100 * p['accuracy']:.1f}% ({p['calls']} calls)</title></circle>"
        for t, p in pairs
    )
    line = " ".join(f"{x(t):.1f},{y(p['accuracy']):.1f}" for t, p in pairs)
    markers = "".join(
        f"<line x1='{x(_seconds(c['at'])):.1f}' x2='{x(_seconds(c['at'])):.1f}' y1='{PAD / 2}' "
        f"y2='{HEIGHT - PAD}' stroke='#a60' stroke-dasharray='4 3' data-field='version-marker' "
        f"data-version='{c['version']}'/><text x='{x(_seconds(c['at'])) + 3:.1f}' y='{PAD - 2}' "
        f"font-size='11' fill='#a60'>v{c['version']}</text>"
        for c in live.get("changes", [])
    )
    axis = "".join(
        f"<text x='2' y='{y(a) + 4:.1f}' font-size='10' fill='#777'>{int(a * 100)}%</text>"
        f"<line x1='{PAD}' x2='{WIDTH - PAD}' y1='{y(a):.1f}' y2='{y(a):.1f}' stroke='#eee'/>"
        for a in (0.0, 0.5, 1.0)
    )
    label = escape(f"live accuracy, {len(points)} points")
    return (
        f"<svg width='{WIDTH}' height='{HEIGHT}' role='img' aria-label='{label}'>{axis}"
        f"<polyline fill='none' stroke='#36c' stroke-width='1.5' points='{line}'/>"
        f"{dots}{markers}</svg>"
    )
