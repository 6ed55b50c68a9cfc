"""The before/after summary printed at the end of the demo."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from dspy_flywheel.demo.traffic import Tally
from dspy_flywheel.demo.watch import Lifecycle


def print_summary(console: Console, tally: Tally, lifecycle: Lifecycle, summary: Any) -> int:
    before = tally.accuracy("code")
    new_key = f"v{lifecycle.serving_version}" if lifecycle.serving_version else None
    after = tally.accuracy(new_key) if new_key else None
    table = Table(title="before / after")
    table.add_column("")
    table.add_column("before (code program)")
    table.add_column(f"after ({new_key or '-'})")
    counts = {k: f"{ok}/{n}" for k, (ok, n) in tally.by_version.items()}
    table.add_row("accuracy on live traffic",
                  f"{_pct(before)} ({counts.get('code', '-')})",
                  f"{_pct(after)} ({counts.get(new_key or '', '-')})")
    published = lifecycle.published or {}
    table.add_row("holdout accuracy", _pct(published.get("holdout_before")),
                  _pct(published.get("holdout_after")))
    wb, wa = summary.usage.get("worker before", {}), summary.usage.get("worker after", {})
    table.add_row("worker LM calls", str(wb.get("calls", "-")), str(wa.get("calls", "-")))
    table.add_row("worker tokens (prompt+completion)", _tokens(wb), _tokens(wa))
    console.print(table)
    cost = lifecycle.details.get("cost") or {}
    if cost:
        console.print("optimizer cost: " + ", ".join(f"{k}={v}" for k, v in cost.items()))
    steps = Table(title="wall time per step")
    steps.add_column("step")
    steps.add_column("seconds", justify="right")
    for name, seconds in summary.phases.items():
        steps.add_row(name, f"{seconds:.1f}")
    console.print(steps)
    console.print(f"optimization lifecycle trace id: {lifecycle.trace_id or '-'}")
    gain = None if before is None or after is None else 100 * (after - before)
    console.print(f"demo accuracy_before={_pct(before).strip()} accuracy_after={_pct(after).strip()} "
                  f"gain_points={'-' if gain is None else f'{gain:.1f}'}", highlight=False)
    return 0 if gain is not None and gain > 0 else 1


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _tokens(usage: dict[str, int]) -> str:
    if not usage:
        return "-"
    return str(usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
