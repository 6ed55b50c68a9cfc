"""PostgreSQL persistence of the rollout service (migration 0500): worker states, offsets,
decisions, their audit rows and their events (outbox), written in one transaction per batch.

``RolloutStore`` writes them (its relay reads ``rollout_outbox``); ``fetch_*`` are the readers the
manager API, the CLI and the dashboard use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from dspy_flywheel.access.audit import record_audit
from dspy_flywheel.bus.outbox import OutboxEvent
from dspy_flywheel.rollout.controller import Decision
from dspy_flywheel.rollout.state import WorkerRollout
from dspy_flywheel.store import outbox
from dspy_flywheel.store.offsets import Offsets
from dspy_flywheel.store.pool import Executor
from dspy_flywheel.store.stateful import StateStore


@dataclass(frozen=True)
class Published:
    """A decision with its traceparent (the decision's span) and the events that announce it."""

    decision: Decision
    traceparent: str | None
    events: Sequence[OutboxEvent]


@dataclass(frozen=True)
class Refusal:
    """An operator command that could not apply: audited, nothing else changes."""

    actor: str
    worker_id: str
    details: dict[str, Any]


class RolloutStore(StateStore):
    SERVICE = "rollout"

    async def load_states(self) -> dict[str, WorkerRollout]:
        return {w: WorkerRollout.from_json(s) for w, s in (await self._stored_states()).items()}

    async def save(
        self,
        states: Mapping[str, tuple[dict[str, Any]]],
        offsets: Offsets,
        published: Iterable[Published] = (),
        refusals: Iterable[Refusal] = (),
    ) -> None:
        """States, offsets, decisions (row + audit row + events) and refusals, atomically."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self._save_states(conn, states, offsets)
            for item in published:
                await self._decision(conn, item)
            for refusal in refusals:
                await record_audit(
                    conn,
                    refusal.actor,
                    "rollout.command_refused",
                    refusal.worker_id,
                    refusal.details,
                )

    async def _decision(self, conn: asyncpg.Connection, item: Published) -> None:
        d = item.decision
        a = d.assignment
        await conn.execute(
            """INSERT INTO rollout_decisions
               (scope, worker_id, sequence, decision, stable_version, candidate_version,
                candidate_share, pinned, reason, evidence, decided_by, command_id, job_id,
                traceparent, decided_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
               ON CONFLICT DO NOTHING""",
            self.scope,
            d.worker_id,
            d.sequence,
            d.decision,
            a.stable,
            a.candidate,
            a.share,
            a.pinned,
            d.reason,
            d.evidence,
            d.decided_by,
            d.command_id,
            d.job_id,
            item.traceparent,
            datetime.fromtimestamp(d.at_ms / 1000, UTC),
        )
        await record_audit(
            conn,
            d.decided_by,
            f"rollout.{d.decision}",
            d.worker_id,
            {
                "sequence": d.sequence,
                "assignment": a.describe(),
                "reason": d.reason,
                "command_id": d.command_id,
                "job_id": d.job_id,
                "traceparent": item.traceparent,
            },
        )
        await outbox.insert(conn, "rollout_outbox", item.events, self.scope)


async def fetch_state(
    db: Executor, worker_id: str, scope: str | None = None
) -> dict[str, Any] | None:
    """A worker's rollout state (newest across scopes when ``scope`` is None)."""
    row = await db.fetchrow(
        """SELECT state, updated_at FROM rollout_state
           WHERE worker_id = $1 AND ($2::text IS NULL OR scope = $2)
           ORDER BY updated_at DESC LIMIT 1""",
        worker_id,
        scope,
    )
    return None if row is None else {**row["state"], "updated_at": row["updated_at"].isoformat()}


async def fetch_decisions(
    db: Executor, worker_id: str, *, scope: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The worker's rollout decisions, newest first."""
    rows = await db.fetch(
        """SELECT worker_id, sequence, decision, stable_version, candidate_version,
                  candidate_share, pinned, reason, evidence, decided_by, command_id, job_id,
                  traceparent, decided_at
           FROM rollout_decisions WHERE worker_id = $1 AND ($2::text IS NULL OR scope = $2)
           ORDER BY decided_at DESC, sequence DESC LIMIT $3""",
        worker_id,
        scope,
        limit,
    )
    return [{**dict(r), "decided_at": r["decided_at"].isoformat()} for r in rows]
