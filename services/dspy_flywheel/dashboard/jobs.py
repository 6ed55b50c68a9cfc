"""Jobs on the dashboard: the ones in flight, and one job's page (status history, trace id).

The status history is the job's ``OptimizationStatusChanged`` events as the optimizer wrote them
to its outbox (kept after publishing), so the page shows every step, not only the last one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

from dspy_flywheel.contracts.events import OptimizationStatusChanged
from dspy_flywheel.store import jobs
from dspy_flywheel.telemetry import trace_id_of

_IN_FLIGHT = """
SELECT job_id, worker_id, status, optimizer, progress, coalesce(message, '') AS message,
       created_at, started_at
FROM optimization_jobs WHERE status IN ('queued', 'running') ORDER BY created_at"""
_HISTORY = """
SELECT record, created_at FROM optimizer_outbox
WHERE event_type = 'OptimizationStatusChanged' AND record->>'job_id' = $1 ORDER BY id"""


@dataclass(frozen=True)
class InFlight:
    job_id: str
    worker_id: str
    status: str
    optimizer: str
    progress: float
    message: str
    created_at: str
    started_at: str | None


@dataclass(frozen=True)
class StatusStep:
    at: str
    status: str
    progress: float | None
    message: str


@dataclass
class JobPage:
    job: dict[str, Any]
    trace_id: str | None
    history: list[StatusStep] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def in_flight(pool: asyncpg.Pool) -> list[InFlight]:
    found = []
    for r in await pool.fetch(_IN_FLIGHT):
        row = {
            **dict(r),
            "progress": float(r["progress"]),
            "created_at": r["created_at"].isoformat(),
        }
        row["started_at"] = r["started_at"].isoformat() if r["started_at"] else None
        found.append(InFlight(**row))
    return found


def _step(row: asyncpg.Record) -> StatusStep:
    raw = row["record"]
    event = OptimizationStatusChanged.from_record(json.loads(raw) if isinstance(raw, str) else raw)
    at = row["created_at"].isoformat()
    return StatusStep(at, event.status, event.progress, event.message or "")


async def job_page(pool: asyncpg.Pool, job_id: str) -> JobPage | None:
    job = await jobs.get(pool, job_id)
    if job is None:
        return None
    history = [_step(r) for r in await pool.fetch(_HISTORY, job_id)]
    return JobPage(job.as_dict(), trace_id_of(job.traceparent), history)
