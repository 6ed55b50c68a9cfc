"""Optimization jobs: one row per ``job_id``, the durable queue and the status of record.

Lifecycle: ``queued → running → succeeded | rejected | failed | cancelled``. A job row is
inserted once (a redelivered request finds it and does nothing), claimed by one optimizer
instance (``FOR UPDATE SKIP LOCKED``), kept alive by heartbeats, and finished once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Final

import asyncpg

from dspy_flywheel.store import outbox
from dspy_flywheel.store.pool import Executor as Executor
from dspy_flywheel.store.pool import json_fields, placeholders

TERMINAL: Final = frozenset({"succeeded", "rejected", "failed", "cancelled"})
STATUSES: Final = ("queued", "running", *sorted(TERMINAL))


@dataclass(frozen=True)
class JobRequest:
    """What an OptimizationRequested event asks for."""

    job_id: str
    worker_id: str
    optimizer: str
    reason: str = "manual"
    params: dict[str, Any] = field(default_factory=dict)
    program_ref: str | None = None
    metric_ref: str | None = None
    requested_by: str = "system"
    evidence: dict[str, Any] = field(default_factory=dict)
    traceparent: str | None = None
    request_event_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Job(JobRequest):
    """A job's row: its request, then its status, results and owner."""

    status: str
    progress: float
    message: str | None
    details: dict[str, Any]
    snapshot_id: int | None
    program_version: int | None
    holdout_before: float | None
    holdout_after: float | None
    lm_calls: int | None
    tokens: int | None
    cpu_s: float | None
    wall_s: float | None
    owner: str | None
    owner_host: str | None
    owner_pid: int | None
    heartbeat_at: datetime | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def as_dict(self) -> dict[str, Any]:
        return json_fields(self)


_COLUMNS: Final = ", ".join(f.name for f in fields(Job))
_REQUEST_COLUMNS: Final = [f.name for f in fields(JobRequest)]


def _job(row: asyncpg.Record | None) -> Job | None:
    return None if row is None else Job(**dict(row))


async def enqueue(db: Executor, req: JobRequest) -> bool:
    """Insert the job as ``queued``; False when the job id is already known."""
    row = await db.fetchrow(
        f"INSERT INTO optimization_jobs (status, {', '.join(_REQUEST_COLUMNS)})"
        f" VALUES ('queued', {placeholders(len(_REQUEST_COLUMNS))})"
        " ON CONFLICT (job_id) DO NOTHING RETURNING job_id",
        *(getattr(req, name) for name in _REQUEST_COLUMNS),
    )
    return row is not None


async def claim_next(db: Executor, owner: str, host: str, pid: int) -> Job | None:
    """Atomically move the oldest queued job to ``running`` under this owner."""
    row = await db.fetchrow(
        f"""UPDATE optimization_jobs SET status = 'running', owner = $1, owner_host = $2,
               owner_pid = $3, heartbeat_at = now(), started_at = now(), updated_at = now()
           WHERE job_id = (SELECT job_id FROM optimization_jobs WHERE status = 'queued'
                           ORDER BY created_at, job_id LIMIT 1 FOR UPDATE SKIP LOCKED)
           RETURNING {_COLUMNS}""",
        owner,
        host,
        pid,
    )
    return _job(row)


async def heartbeat(db: Executor, job_id: str, owner: str) -> bool | None:
    """Refresh the heartbeat; returns whether a cancel was requested (None: no longer ours)."""
    row = await db.fetchrow(
        """UPDATE optimization_jobs SET heartbeat_at = now()
           WHERE job_id = $1 AND owner = $2 AND status = 'running'
           RETURNING cancel_requested""",
        job_id,
        owner,
    )
    return None if row is None else bool(row["cancel_requested"])


async def set_progress(
    db: Executor,
    job_id: str,
    progress: float,
    details: dict[str, Any] | None = None,
    message: str | None = None,
) -> None:
    """Record progress; ``details`` is merged into the stored details."""
    await db.execute(
        """UPDATE optimization_jobs SET progress = $2, details = details || $3,
               message = COALESCE($4, message), updated_at = now()
           WHERE job_id = $1 AND status = 'running'""",
        job_id,
        progress,
        details or {},
        message,
    )


_FINISH_FIELDS: Final = frozenset(
    {
        "snapshot_id", "program_version", "holdout_before", "holdout_after", "lm_calls", "tokens",
        "cpu_s", "wall_s",
    }
)  # fmt: skip


def _result_fields(values: dict[str, Any]) -> list[str]:
    """The names of ``values`` in order; ValueError for one that is not a result column."""
    unknown = set(values) - _FINISH_FIELDS
    if unknown:
        raise ValueError(f"unknown job fields: {sorted(unknown)}")
    return sorted(values)


async def finish(
    db: Executor,
    job_id: str,
    status: str,
    message: str | None,
    *,
    details: dict[str, Any] | None = None,
    only_from: tuple[str, ...] = ("queued", "running"),
    **values: Any,
) -> Job | None:
    """Move a job to a terminal status; None when it was not in ``only_from`` (already done)."""
    if status not in TERMINAL:
        raise ValueError(f"finish() needs a terminal status, got {status!r}")
    names = _result_fields(values)
    sets = "".join(f", {n} = ${i + 6}" for i, n in enumerate(names))
    row = await db.fetchrow(
        f"""UPDATE optimization_jobs SET status = $2, message = $3, details = details || $4,
               finished_at = now(), updated_at = now(),
               progress = CASE WHEN $2 = 'succeeded' THEN 1.0 ELSE progress END{sets}
           WHERE job_id = $1 AND status = ANY($5::text[])
           RETURNING {_COLUMNS}""",
        job_id,
        status,
        message,
        details or {},
        list(only_from),
        *(values[n] for n in names),
    )
    return _job(row)


async def record(db: Executor, job_id: str, **values: Any) -> None:
    """Set result columns (snapshot id, costs, scores) on a job without changing its status."""
    names = _result_fields(values)
    if not names:
        return
    sets = ", ".join(f"{n} = ${i + 2}" for i, n in enumerate(names))
    await db.execute(
        f"UPDATE optimization_jobs SET {sets}, updated_at = now() WHERE job_id = $1",
        job_id,
        *(values[n] for n in names),
    )


async def get(db: Executor, job_id: str) -> Job | None:
    return _job(
        await db.fetchrow(f"SELECT {_COLUMNS} FROM optimization_jobs WHERE job_id = $1", job_id)
    )


async def list_jobs(
    db: Executor, *, worker_id: str | None = None, status: str | None = None, limit: int = 50
) -> list[Job]:
    rows = await db.fetch(
        f"""SELECT {_COLUMNS} FROM optimization_jobs
           WHERE ($1::text IS NULL OR worker_id = $1) AND ($2::text IS NULL OR status = $2)
           ORDER BY created_at DESC, job_id DESC LIMIT $3""",
        worker_id,
        status,
        limit,
    )
    return [Job(**dict(r)) for r in rows]


async def request_cancel(db: Executor, job_id: str) -> Job | None:
    """Flag a running or queued job for cancellation (the owning optimizer acts on it);
    None when the job is unknown or already finished."""
    return _job(
        await db.fetchrow(
            f"""UPDATE optimization_jobs SET cancel_requested = true, updated_at = now()
           WHERE job_id = $1 AND status IN ('queued', 'running') RETURNING {_COLUMNS}""",
            job_id,
        )
    )


async def cancel(pool: asyncpg.Pool, status_topic: str, job_id: str, by: str) -> Job | None:
    """Cancel a queued job now (with its ``cancelled`` status event), or flag a running one
    (its optimizer kills the child); None when the job is unknown or already finished."""
    message = f"cancelled by {by} before it started"
    async with pool.acquire() as conn, conn.transaction():
        done = await finish(conn, job_id, "cancelled", message, only_from=("queued",))
        if done is None:
            return await request_cancel(conn, job_id)
        await outbox.add_status(
            conn,
            status_topic,
            job_id,
            done.worker_id,
            "cancelled",
            progress=done.progress,
            message=message,
        )
        return done


async def latest_for_worker(db: Executor, worker_id: str) -> Job | None:
    return _job(
        await db.fetchrow(
            f"""SELECT {_COLUMNS} FROM optimization_jobs WHERE worker_id = $1
           ORDER BY created_at DESC LIMIT 1""",
            worker_id,
        )
    )
