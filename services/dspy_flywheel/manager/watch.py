"""Live progress of optimization jobs in the terminal (rich)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from dspy_flywheel.manager.core import OptimizationStatus

Fetch = Callable[[str], Awaitable[OptimizationStatus | None]]
_STYLE = {"succeeded": "green", "rejected": "yellow", "failed": "red", "cancelled": "magenta"}


def describe(status: OptimizationStatus) -> str:
    detail = status.details
    parts = [status.status]
    if status.status == "running":
        if detail.get("phase"):
            parts.append(str(detail["phase"]))
        if detail.get("trial_total"):
            parts.append(f"trial {detail.get('trials', 0)}/{detail['trial_total']}")
        if detail.get("lm_calls"):
            parts.append(f"{detail['lm_calls']} LM calls")
    elif status.terminal:
        if status.holdout_before is not None and status.holdout_after is not None:
            parts.append(f"holdout {status.holdout_before:.3f} → {status.holdout_after:.3f}")
        if status.program_version is not None:
            parts.append(f"v{status.program_version}")
        if status.status in ("failed", "cancelled") and status.message:
            parts.append(status.message)
    return " · ".join(parts)


async def watch_jobs(
    fetch: Fetch,
    job_ids: Sequence[str],
    *,
    console: Console | None = None,
    poll_s: float = 0.5,
    timeout_s: float | None = None,
) -> dict[str, str]:
    """Progress bars until every job is terminal; returns job id → final status."""
    console = console or Console()
    final: dict[str, str] = {}
    columns = (
        TextColumn("{task.fields[name]}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[state]}"),
    )
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    with Progress(*columns, console=console, transient=False) as progress:
        tasks: dict[str, TaskID] = {
            job_id: progress.add_task("", total=1.0, name=job_id[-12:], state="requested")
            for job_id in job_ids
        }
        while len(final) < len(job_ids):
            for job_id in job_ids:
                if job_id in final:
                    continue
                status = await fetch(job_id)
                if status is None:
                    progress.update(tasks[job_id], state="waiting for the optimizer")
                    continue
                label = f"{status.worker_id} {job_id[-8:]}"
                state = escape(describe(status))
                if status.terminal:
                    style = _STYLE.get(status.status, "")
                    state = f"[{style}]{state}[/{style}]" if style else state
                    final[job_id] = status.status
                progress.update(
                    tasks[job_id],
                    completed=1.0 if status.terminal else status.progress,
                    name=label,
                    state=state,
                )
            if len(final) < len(job_ids):
                if deadline is not None and loop.time() > deadline:
                    break
                await asyncio.sleep(poll_s)
    return final
