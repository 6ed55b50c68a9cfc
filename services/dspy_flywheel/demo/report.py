"""The before/after summary printed at the end of the demo."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from dspy_flywheel.cli import pct
from dspy_flywheel.demo.session import DemoSession


def _tokens(usage: dict[str, int]) -> str:
    if not usage:
        return "-"
    return str(usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))


def print_summary(console: Console, session: DemoSession) -> int:
    tally, lifecycle = session.tally, session.lifecycle
    new_key = f"v{lifecycle.serving_version}" if lifecycle.serving_version else ""
    before, after = tally.accuracy("code"), tally.accuracy(new_key)
    counts = {k: f"{ok}/{n}" for k, (ok, n) in tally.by_version.items()}
    table = Table(title="before / after")
    for column in ("", "before (code program)", f"after ({new_key or '-'})"):
        table.add_column(column)
    table.add_row(
        "accuracy on live traffic",
        f"{pct(before)} ({counts.get('code', '-')})",
        f"{pct(after)} ({counts.get(new_key, '-')})",
    )
    published = lifecycle.published
    table.add_row(
        "holdout accuracy",
        pct(published.holdout_before if published else None),
        pct(published.holdout_after if published else None),
    )
    wb, wa = session.usage.get("worker before", {}), session.usage.get("worker after", {})
    table.add_row("worker LM calls", str(wb.get("calls", "-")), str(wa.get("calls", "-")))
    table.add_row("worker tokens (prompt+completion)", _tokens(wb), _tokens(wa))
    console.print(table)
    details = lifecycle.details
    if "lm_calls" in details:
        split = details.get("split") or {}
        console.print(
            f"optimizer: {details.get('lm_calls')} LM calls, {details.get('tokens')} tokens, "
            f"peak RSS {details.get('peak_rss_mb')} MB; dataset split {split}",
            highlight=False,
        )
    for rollout in lifecycle.rollouts:
        console.print(f"rollout {rollout.decision}: {rollout.reason}", highlight=False)
    if session.canary_calls:
        reused = f", {session.canary_reused} re-served tickets" if session.canary_reused else ""
        console.print(
            f"canary: {session.canary_calls} live calls served until the decision "
            f"({session.concurrency} at a time{reused})",
            highlight=False,
        )
    steps = Table(title="wall time per step")
    steps.add_column("step")
    steps.add_column("seconds", justify="right")
    for name, seconds in session.phases.items():
        steps.add_row(name, f"{seconds:.1f}")
    console.print(steps)
    console.print(f"optimization lifecycle trace id: {lifecycle.trace_id or '-'}")
    gain = None if before is None or after is None else 100 * (after - before)
    console.print(
        f"demo accuracy_before={pct(before)} accuracy_after={pct(after)} "
        f"gain_points={'-' if gain is None else f'{gain:.1f}'}",
        highlight=False,
    )
    return 0 if gain is not None and gain > 0 else 1
