"""``flywheel jobs list|show|watch|cancel|run|batch|metrics`` on top of OptimizationManager.

Reads ``DATABASE_URL`` / ``KAFKA_BOOTSTRAP_SERVERS`` (and ``FLYWHEEL_*``) like the services.
``run`` and ``batch`` take ``--watch`` to follow the new jobs with live progress bars.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from dspy_flywheel.cli import cli_user
from dspy_flywheel.compile.errors import OptimizerConfigError
from dspy_flywheel.contracts.validate import InvalidInput
from dspy_flywheel.manager.core import OptimizationManager, OptimizationStatus
from dspy_flywheel.manager.inputs import ManagerError
from dspy_flywheel.manager.settings import ManagerSettings
from dspy_flywheel.manager.watch import describe, watch_jobs
from dspy_flywheel.trigger.config import ConfigError, parse_param


def _param(text: str) -> tuple[str, Any]:
    try:
        return parse_param(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(f"--param wants key=value, got {text!r}") from exc


def _config(args: argparse.Namespace) -> dict[str, Any]:
    given = {"optimizer": args.optimizer, "params": dict(args.param or ())}
    given.update(program_ref=args.program_ref, metric_ref=args.metric_ref)
    return {k: v for k, v in given.items() if v}


def _table(rows: list[OptimizationStatus]) -> Table:
    table = Table(
        "job", "worker", "status", "progress", "optimizer", "before", "after", "version", "created"
    )
    for s in rows:
        table.add_row(
            s.job_id,
            s.worker_id or "",
            s.status,
            f"{s.progress:.0%}",
            s.optimizer or "",
            "" if s.holdout_before is None else f"{s.holdout_before:.3f}",
            "" if s.holdout_after is None else f"{s.holdout_after:.3f}",
            "" if s.program_version is None else str(s.program_version),
            (s.created_at or "")[:19],
        )
    return table


async def _with_manager(args: argparse.Namespace) -> int:
    console = Console()
    try:
        async with OptimizationManager(ManagerSettings()) as manager:
            result: int = await args.action(manager, args, console)
            return result
    except (ManagerError, OptimizerConfigError, InvalidInput) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2


async def _list(m: OptimizationManager, args: argparse.Namespace, console: Console) -> int:
    rows = await m.list_jobs(worker_id=args.worker, status=args.status, limit=args.limit)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        console.print(_table(rows))
    return 0


async def _show(m: OptimizationManager, args: argparse.Namespace, console: Console) -> int:
    status = await m.get_optimization_status(args.job_id)
    if status is None:
        console.print(f"unknown job {args.job_id}")
        return 1
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
    else:
        console.print(f"{status.job_id} ({status.worker_id}): {describe(status)}")
        if status.trace_id:
            console.print(f"trace {status.trace_id}: dashboard /dashboard/traces/{status.trace_id}")
        console.print_json(json.dumps(status.as_dict()))
    return 0


async def _follow(
    m: OptimizationManager, job_ids: list[str], console: Console, timeout_s: float | None
) -> int:
    final = await watch_jobs(
        m.get_optimization_status, job_ids, console=console, timeout_s=timeout_s
    )
    finished = bool(final) and len(final) == len(job_ids)
    return 0 if finished and all(s in ("succeeded", "rejected") for s in final.values()) else 1


async def _watch(m: OptimizationManager, args: argparse.Namespace, console: Console) -> int:
    return await _follow(m, args.job_ids, console, args.timeout)


async def _cancel(m: OptimizationManager, args: argparse.Namespace, console: Console) -> int:
    status = await m.cancel(args.job_id, requested_by=cli_user())
    if status is None:
        console.print(f"unknown job {args.job_id}")
        return 1
    console.print(
        f"{args.job_id}: {status.status}"
        + (" (cancel requested)" if status.status == "running" else "")
    )
    return 0


async def _run(m: OptimizationManager, args: argparse.Namespace, console: Console) -> int:
    job_id = await m.execute_optimization(args.worker, _config(args), requested_by=cli_user())
    console.print(f"requested job {job_id} for {args.worker}")
    return await _follow(m, [job_id], console, args.timeout) if args.watch else 0


async def _batch(m: OptimizationManager, args: argparse.Namespace, console: Console) -> int:
    jobs = await m.batch_optimize(args.workers, _config(args), requested_by=cli_user())
    for worker, job_id in jobs.items():
        console.print(f"requested job {job_id} for {worker}")
    return await _follow(m, list(jobs.values()), console, args.timeout) if args.watch else 0


async def _metrics(m: OptimizationManager, args: argparse.Namespace, console: Console) -> int:
    print(
        json.dumps((await m.get_performance_metrics(args.worker)).as_dict(), indent=2, default=str)
    )
    return 0


def _request_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--optimizer", help="BootstrapFewShot, MIPROv2, ... (default: config)")
    parser.add_argument("--param", action="append", type=_param, metavar="KEY=VALUE")
    parser.add_argument("--program-ref", dest="program_ref")
    parser.add_argument("--metric-ref", dest="metric_ref")
    parser.add_argument("--watch", action="store_true", help="follow with live progress")
    parser.add_argument("--timeout", type=float, default=None, help="stop watching after S s")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    jobs = subparsers.add_parser("jobs", help="optimization jobs (manager)")
    sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="job history, newest first")
    p.add_argument("--worker")
    p.add_argument("--status")
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--json", action="store_true")
    p.set_defaults(action=_list)
    p = sub.add_parser("show", help="one job in full")
    p.add_argument("job_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(action=_show)
    p = sub.add_parser("watch", help="live progress bars until the jobs finish")
    p.add_argument("job_ids", nargs="+")
    p.add_argument("--timeout", type=float, default=None)
    p.set_defaults(action=_watch)
    p = sub.add_parser("cancel", help="cancel a queued or running job")
    p.add_argument("job_id")
    p.set_defaults(action=_cancel)
    p = sub.add_parser("run", help="optimize one worker now")
    p.add_argument("worker")
    _request_flags(p)
    p.set_defaults(action=_run)
    p = sub.add_parser("batch", help="optimize several workers")
    p.add_argument("workers", nargs="+")
    _request_flags(p)
    p.set_defaults(action=_batch)
    p = sub.add_parser("metrics", help="a worker's accuracy, versions and cost")
    p.add_argument("worker")
    p.set_defaults(action=_metrics)
    for parser in sub.choices.values():
        parser.set_defaults(func=_with_manager)
