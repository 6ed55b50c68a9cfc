"""What the dashboard shows, read from PostgreSQL (programs, jobs, trigger state).

Alerts: the trigger's degradation alerts (its outbox keeps every one it published), then
failed or rejected jobs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

from dspy_flywheel.trigger.store import fetch_alerts

_WORKERS = """
SELECT worker_id FROM programs UNION SELECT worker_id FROM optimization_jobs
UNION SELECT worker_id FROM trigger_outbox WHERE event_type = 'Alert' ORDER BY 1"""
_VERSIONS = """
SELECT version, optimizer, holdout_before, holdout_after, lm_calls, tokens, wall_s, created_at,
       gate
FROM programs WHERE worker_id = $1 ORDER BY version"""
_JOBS = """
SELECT status, count(*) AS n FROM optimization_jobs WHERE worker_id = $1 GROUP BY status"""
_RECENT_PROBLEMS = """
SELECT job_id, status, coalesce(message, '') AS message FROM optimization_jobs
WHERE worker_id = $1 AND status IN ('failed', 'rejected') ORDER BY created_at DESC LIMIT 5"""


@dataclass
class WorkerCard:
    worker_id: str
    versions: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[str, int] = field(default_factory=dict)
    first_score: float | None = None
    latest_score: float | None = None
    gain_points: float | None = None
    optimization_tokens: int = 0
    optimization_wall_s: float = 0.0
    roi_points_per_1k_tokens: float | None = None
    alerts: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _card(pool: asyncpg.Pool, worker_id: str) -> WorkerCard:
    card = WorkerCard(worker_id)
    rows = await pool.fetch(_VERSIONS, worker_id)
    card.versions = [{**dict(r), "created_at": r["created_at"].isoformat()} for r in rows]
    card.jobs = {r["status"]: r["n"] for r in await pool.fetch(_JOBS, worker_id)}
    if rows:
        card.first_score = rows[0]["holdout_before"]
        card.latest_score = rows[-1]["holdout_after"]
        card.optimization_tokens = sum(r["tokens"] or 0 for r in rows)
        card.optimization_wall_s = sum(r["wall_s"] or 0.0 for r in rows)
    if card.first_score is not None and card.latest_score is not None:
        card.gain_points = 100 * (card.latest_score - card.first_score)
        if card.optimization_tokens:
            card.roi_points_per_1k_tokens = card.gain_points / (card.optimization_tokens / 1000)
    for alert in await fetch_alerts(pool, worker_id=worker_id, limit=5):
        card.alerts.append(f"{alert['severity']}: {alert['message']}")
    for problem in await pool.fetch(_RECENT_PROBLEMS, worker_id):
        card.alerts.append(f"job {problem['job_id']} {problem['status']}: {problem['message']}")
    return card


async def collect_cards(pool: asyncpg.Pool) -> list[WorkerCard]:
    return [await _card(pool, r["worker_id"]) for r in await pool.fetch(_WORKERS)]
