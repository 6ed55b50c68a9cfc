"""Per-worker performance: rolling accuracy, versions with before/after, serving, cost."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

from dspy_flywheel.store import programs


@dataclass(frozen=True)
class PerformanceMetrics:
    worker_id: str
    rolling_accuracy: float | None
    accuracy_window: int
    labeled_examples: int
    trigger_view: dict[str, Any] | None
    current_version: int | None
    versions: list[dict[str, Any]]
    serving: list[dict[str, Any]]
    jobs: dict[str, int]
    cost: dict[str, float]
    improvement: dict[str, float | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _table_exists(pool: asyncpg.Pool, name: str) -> bool:
    return bool(await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", name))


async def rolling_accuracy(
    pool: asyncpg.Pool, worker_id: str, window: int
) -> tuple[float | None, int]:
    """Mean score of the worker's last ``window`` scored examples (the collector's table)."""
    if not await _table_exists(pool, "training_examples"):
        return None, 0
    row = await pool.fetchrow(
        """SELECT avg(score) AS accuracy, count(*) AS n FROM (
               SELECT score FROM training_examples
               WHERE worker_id = $1 AND score IS NOT NULL
               ORDER BY id DESC LIMIT $2) recent""",
        worker_id,
        window,
    )
    n = int(row["n"]) if row else 0
    return (float(row["accuracy"]) if n else None), n


async def _trigger_view(pool: asyncpg.Pool, scope: str, worker_id: str) -> dict[str, Any] | None:
    if not await _table_exists(pool, "trigger_state"):
        return None
    view = await pool.fetchval(
        "SELECT view FROM trigger_state WHERE scope = $1 AND worker_id = $2", scope, worker_id
    )
    return dict(view) if view else None


async def performance_metrics(
    pool: asyncpg.Pool, worker_id: str, *, window: int, trigger_scope: str
) -> PerformanceMetrics:
    accuracy, labeled = await rolling_accuracy(pool, worker_id, window)
    versions = await programs.list_versions(pool, worker_id, limit=100)
    serving = await programs.serving(pool, worker_id)
    rows = await pool.fetch(
        """SELECT status, count(*) AS n, COALESCE(sum(lm_calls), 0) AS lm_calls,
                  COALESCE(sum(tokens), 0) AS tokens, COALESCE(sum(cpu_s), 0) AS cpu_s,
                  COALESCE(sum(wall_s), 0) AS wall_s
           FROM optimization_jobs WHERE worker_id = $1 GROUP BY status""",
        worker_id,
    )
    cost = {k: float(sum(r[k] for r in rows)) for k in ("lm_calls", "tokens", "cpu_s", "wall_s")}
    before = versions[-1].holdout_before if versions else None  # the first version's
    after = versions[0].holdout_after if versions else None  # the latest version's
    gain = after - before if after is not None and before is not None else None
    improvement = {"first_before": before, "latest_after": after, "gain": gain}
    return PerformanceMetrics(
        worker_id=worker_id,
        rolling_accuracy=accuracy,
        accuracy_window=window,
        labeled_examples=labeled,
        trigger_view=await _trigger_view(pool, trigger_scope, worker_id),
        current_version=versions[0].version if versions else None,
        versions=[v.summary() for v in versions],
        serving=[{**asdict(a), "acked_at": a.acked_at.isoformat()} for a in serving],
        jobs={r["status"]: int(r["n"]) for r in rows},
        cost=cost,
        improvement=improvement,
    )
