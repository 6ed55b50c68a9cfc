"""Per-worker quality and retention policy: service defaults overridden by ``collector_policies``.

A row's NULL column means "use the default". :class:`PolicyBook` caches the table and reloads
it every ``refresh_s`` seconds, so operators change policies without restarting the collector.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerPolicy:
    accept_unlabeled_success: bool = False
    min_score: float | None = None
    max_field_chars: int = 20_000
    drop_duplicates: bool = True
    pending_ttl_s: float = 3600.0
    retention_max_age_days: float | None = None
    retention_max_count: int | None = None

    def with_overrides(self, row: dict[str, Any]) -> WorkerPolicy:
        names = {f.name for f in dataclasses.fields(self)}
        changes = {k: v for k, v in row.items() if k in names and v is not None}
        return dataclasses.replace(self, **changes)


POLICY_COLUMNS = tuple(f.name for f in dataclasses.fields(WorkerPolicy))


class PolicyBook:
    def __init__(self, default: WorkerPolicy, refresh_s: float = 30.0) -> None:
        self.default = default
        self._refresh_s = refresh_s
        self._by_worker: dict[str, WorkerPolicy] = {}
        self._loaded_at = float("-inf")

    def for_worker(self, worker_id: str) -> WorkerPolicy:
        return self._by_worker.get(worker_id, self.default)

    def known_workers(self) -> list[str]:
        return list(self._by_worker)

    async def refresh(self, pool: asyncpg.Pool, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._loaded_at < self._refresh_s:
            return
        rows = await pool.fetch(
            f"SELECT worker_id, {', '.join(POLICY_COLUMNS)} FROM collector_policies"
        )
        self._by_worker = {r["worker_id"]: self.default.with_overrides(dict(r)) for r in rows}
        self._loaded_at = time.monotonic()
        log.debug("loaded %d worker policies", len(rows))


async def set_policy(pool: asyncpg.Pool, worker_id: str, **values: Any) -> None:
    """Upsert a worker's overrides (only the given columns change)."""
    unknown = set(values) - set(POLICY_COLUMNS)
    if unknown:
        raise ValueError(f"unknown policy fields: {sorted(unknown)}")
    cols = list(values)
    placeholders = ", ".join(f"${i + 2}" for i in range(len(cols)))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols) or "worker_id = EXCLUDED.worker_id"
    await pool.execute(
        f"INSERT INTO collector_policies (worker_id{''.join(', ' + c for c in cols)}) "
        f"VALUES ($1{', ' + placeholders if cols else ''}) "
        f"ON CONFLICT (worker_id) DO UPDATE SET {updates}, updated_at = now()",
        worker_id,
        *values.values(),
    )
