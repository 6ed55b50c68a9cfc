"""Periodic jobs: expire join state past its TTL, apply retention (``app.run`` runs
them with ``bus.every``, whatever the engine).

Expiry: an execution still waiting for feedback is dropped as ``no_feedback``; feedback whose
execution never came is dropped as ``orphan_feedback``; tombstones just go. ``FOR UPDATE SKIP
LOCKED`` lets several collector instances sweep at once without double counting.
"""

from __future__ import annotations

import logging
from collections import Counter

import asyncpg

from dspy_flywheel.collector.maintenance import RetentionRule, prune
from dspy_flywheel.collector.policy import PolicyBook
from dspy_flywheel.collector.sink import count_drops

log = logging.getLogger(__name__)


async def expire_pending(pool: asyncpg.Pool, batch: int = 1000) -> Counter[tuple[str, str]]:
    """Delete expired join entries, counting drops; returns ``{(worker, reason): n}``."""
    total: Counter[tuple[str, str]] = Counter()
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "DELETE FROM collector_pending WHERE execution_id IN ("
                " SELECT execution_id FROM collector_pending WHERE expires_at <= now()"
                " ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
                " RETURNING worker_id, execution_event_id, feedback_event_id, dropped_reason",
                batch,
            )
            drops: Counter[tuple[str, str]] = Counter()
            for r in rows:
                if r["dropped_reason"] is not None:
                    continue
                reason = "no_feedback" if r["execution_event_id"] else "orphan_feedback"
                drops[r["worker_id"], reason] += 1
            await count_drops(conn, drops)
        total.update(drops)
        if len(rows) < batch:
            break
    if total:
        log.info(
            "expired join state: %s",
            ", ".join(f"{r}={n} ({w})" for (w, r), n in sorted(total.items())),
        )
    return total


async def apply_retention(
    pool: asyncpg.Pool, policies: PolicyBook, processed_ttl_h: float | None
) -> dict[str, int]:
    await policies.refresh(pool)

    def rule(worker_id: str) -> RetentionRule:
        p = policies.for_worker(worker_id)
        return RetentionRule(p.retention_max_age_days, p.retention_max_count)

    deleted = await prune(pool, rule, processed_ttl_h)
    removed = {k: n for k, n in deleted.items() if n}
    if removed:
        log.info("retention removed: %s", removed)
    return deleted
