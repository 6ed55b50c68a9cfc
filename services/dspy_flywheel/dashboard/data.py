"""What the dashboard shows, read from PostgreSQL (programs, jobs, examples, trigger outbox).

Per worker: live accuracy over time (``live``), each version's live and holdout accuracy with
its ROI, the rollout (shares, live accuracy per serving version with its interval, decisions),
jobs by status, alerts. Across workers: jobs in flight and the newest alerts.
ROI of a version: holdout points gained (after - before, x100) per 1k optimization tokens and
per CPU-minute of its job.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

from dspy_flywheel.dashboard.jobs import InFlight, in_flight
from dspy_flywheel.dashboard.live import LiveSeries, live_series
from dspy_flywheel.rollout.operator import rollout_view
from dspy_flywheel.trigger.store import fetch_alerts

RECENT_ALERTS = 10

_WORKERS = """
SELECT worker_id FROM programs UNION SELECT worker_id FROM optimization_jobs
UNION SELECT worker_id FROM trigger_outbox WHERE event_type = 'Alert' ORDER BY 1"""
_VERSIONS = """
SELECT p.version, p.optimizer, p.holdout_before, p.holdout_after, p.lm_calls, p.tokens, p.cpu_s,
       p.wall_s, p.job_id, p.created_at, p.gate
FROM programs p WHERE p.worker_id = $1 ORDER BY p.version"""
_JOBS = """
SELECT status, count(*) AS n FROM optimization_jobs WHERE worker_id = $1 GROUP BY status"""
_RECENT_PROBLEMS = """
SELECT job_id, status, coalesce(message, '') AS message FROM optimization_jobs
WHERE worker_id = $1 AND status IN ('failed', 'rejected') ORDER BY created_at DESC LIMIT 5"""


def points(before: float | None, after: float | None) -> float | None:
    """Holdout points gained (percentage points)."""
    return None if before is None or after is None else 100 * (after - before)


def per_unit(gain: float | None, amount: float | None, unit: float) -> float | None:
    """``gain`` per ``unit`` of ``amount`` (None when either is unknown or nothing was spent)."""
    return None if gain is None or not amount else gain / (amount / unit)


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
    live: dict[str, Any] = field(default_factory=dict)
    rollout: dict[str, Any] | None = None  # shares, live accuracy per version, decisions
    alerts: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _version_row(row: asyncpg.Record, live: LiveSeries) -> dict[str, Any]:
    gain = points(row["holdout_before"], row["holdout_after"])
    accuracy, calls = live.by_version.get(row["version"], (None, 0))
    return {
        **{k: row[k] for k in ("version", "optimizer", "holdout_before", "holdout_after")},
        **{k: row[k] for k in ("lm_calls", "tokens", "cpu_s", "wall_s", "job_id", "gate")},
        "created_at": row["created_at"].isoformat(),
        "live_accuracy": accuracy,
        "live_calls": calls,
        "gain_points": gain,
        "roi_points_per_1k_tokens": per_unit(gain, row["tokens"], 1000),
        "roi_points_per_cpu_minute": per_unit(gain, row["cpu_s"], 60),
    }


async def _card(pool: asyncpg.Pool, worker_id: str) -> WorkerCard:
    card = WorkerCard(worker_id)
    live = await live_series(pool, worker_id)
    card.live = live.as_dict()
    rows = await pool.fetch(_VERSIONS, worker_id)
    card.versions = [_version_row(r, live) for r in rows]
    card.jobs = {r["status"]: r["n"] for r in await pool.fetch(_JOBS, worker_id)}
    if rows:
        card.first_score = rows[0]["holdout_before"]
        card.latest_score = rows[-1]["holdout_after"]
        card.optimization_tokens = sum(r["tokens"] or 0 for r in rows)
        card.optimization_wall_s = sum(r["wall_s"] or 0.0 for r in rows)
    card.gain_points = points(card.first_score, card.latest_score)
    card.roi_points_per_1k_tokens = per_unit(card.gain_points, card.optimization_tokens, 1000)
    card.rollout = await rollout_view(pool, worker_id)
    for alert in await fetch_alerts(pool, worker_id=worker_id, limit=5):
        card.alerts.append(f"{alert['severity']}: {alert['message']}")
    for problem in await pool.fetch(_RECENT_PROBLEMS, worker_id):
        card.alerts.append(f"job {problem['job_id']} {problem['status']}: {problem['message']}")
    return card


async def collect_cards(pool: asyncpg.Pool) -> list[WorkerCard]:
    return [await _card(pool, r["worker_id"]) for r in await pool.fetch(_WORKERS)]


@dataclass
class Overview:
    cards: list[WorkerCard]
    in_flight: list[InFlight]
    alerts: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "workers": [c.as_dict() for c in self.cards],
            "in_flight": [asdict(j) for j in self.in_flight],
            "alerts": self.alerts,
        }


async def overview(pool: asyncpg.Pool) -> Overview:
    return Overview(
        await collect_cards(pool),
        await in_flight(pool),
        await fetch_alerts(pool, limit=RECENT_ALERTS),
    )
