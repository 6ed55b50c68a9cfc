"""Live progress of the demo: a rich panel on a terminal, plain lines elsewhere (CI logs)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from dspy_flywheel.cli import pct
from dspy_flywheel.demo.traffic import Tally
from dspy_flywheel.demo.watch import Lifecycle


class Display:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Live | None = None
        self.phase = "starting"
        self._last_line = 0.0

    def __enter__(self) -> Display:
        if self.console.is_terminal:
            self.live = Live(console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def note(self, message: str) -> None:
        self.console.log(message)

    def update(self, tally: Tally, lifecycle: Lifecycle, serving: str) -> None:
        """``serving``: what the worker serves now (``serving_label``)."""
        if self.live is not None:
            self.live.update(self._table(tally, lifecycle, serving))
        elif time.monotonic() - self._last_line > 5:
            self._last_line = time.monotonic()
            job = "-"
            if lifecycle.job_id:
                job = f"{lifecycle.status or 'requested'} {pct(lifecycle.progress):>6}"
            self.console.print(
                escape(f"[{self.phase}]") + f" calls={tally.calls()} serving={serving} "
                f"rolling_acc={pct(tally.rolling()):>6} job={job}",
                highlight=False,
            )

    def _table(self, tally: Tally, lifecycle: Lifecycle, serving: str) -> Table:
        table = Table(title="dspy-flywheel demo: ticket-router", show_header=False)
        table.add_row("phase", self.phase)
        table.add_row("serving", serving)
        table.add_row("calls", str(tally.calls()))
        table.add_row(f"rolling accuracy (last {tally.window})", f"{pct(tally.rolling()):>6}")
        for key in tally.by_version:
            ok, total = tally.by_version[key]
            table.add_row(f"accuracy on {key}", f"{pct(tally.accuracy(key)):>6} ({ok}/{total})")
        if lifecycle.job_id:
            table.add_row("optimization job", lifecycle.job_id)
            status = lifecycle.status or "requested"
            bar = _bar(lifecycle.progress) if status == "running" else ""
            table.add_row("job status", f"{status} {bar} {lifecycle.message or ''}".strip())
        return table


def serving_label(version: int | None, candidate: dict[str, Any] | None) -> str:
    """The stable version, and the canary beside it (``Worker.candidate``) with its share."""
    stable = "code (unoptimized)" if version is None else f"v{version}"
    if candidate is None:
        return stable
    return f"{stable} + canary v{candidate['version']} on {candidate['share']:.0%} of calls"


def _bar(progress: float | None, width: int = 20) -> str:
    filled = round((progress or 0.0) * width)
    return "[" + "#" * filled + "." * (width - filled) + f"] {pct(progress):>6}"
