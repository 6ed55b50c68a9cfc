"""The rollout part of a worker's card: which versions serve which share, each one's live
accuracy with its always-valid interval, and the latest rollout decisions (``rollout_view``)."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

from dspy_flywheel.dashboard.charts import MISSING, pct


def _shares(view: dict[str, Any]) -> dict[str, float]:
    stable = "code" if view["stable"] is None else f"v{view['stable']}"
    if view["candidate"] is None:
        return {stable: 1.0}
    return {stable: 1.0 - view["share"], f"v{view['candidate']}": view["share"]}


def render_rollout(view: dict[str, Any] | None, decisions: int = 5) -> str:
    if not view or view["assignment"] is None:
        return ""
    shares = _shares(view)
    rows = []
    for name, live in view["live"].items():
        interval = live["interval"]
        bounds = f"[{pct(interval[0])}, {pct(interval[1])}]" if interval else MISSING
        rows.append(
            f"<tr><td>{escape(name)}</td><td>{pct(shares.get(name))}</td>"
            f"<td>{pct(live['accuracy'])}</td><td>{bounds}</td><td>{live['labels']}</td></tr>"
        )
    table = (
        "<table><tr><th>version</th><th>traffic share</th><th>live accuracy</th>"
        "<th>95% always-valid interval</th><th>labeled calls</th></tr>" + "".join(rows) + "</table>"
    )
    items = "".join(
        f"<li><span class='muted'>{escape(d['decided_at'][:19])}</span> "
        f"<b>{escape(d['decision'])}</b> ({escape(d['decided_by'])}): {escape(d['reason'])}</li>"
        for d in view["decisions"][:decisions]
    )
    since = view.get("phase_since_ms")
    started = (
        datetime.fromtimestamp(since / 1000, UTC).isoformat(timespec="seconds") if since else ""
    )
    return (
        f"<h3>Rollout</h3><p>serving {escape(view['assignment'])} · phase "
        f"{escape(str(view['phase']))} since {escape(started)}</p>{table}"
        + (f"<ul class='decisions'>{items}</ul>" if items else "")
    )
