"""PostgreSQL persistence for the trigger: worker state + offsets + outbox, one transaction.

Tables (migrations 0200, 0201, 0600): ``trigger_state``, ``service_offsets``, ``trigger_outbox``
(optimization requests and their alerts); every row
carries the ``scope`` (the topic prefix by default) so deployments can share a schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from dspy_flywheel.bus.outbox import OutboxEvent
from dspy_flywheel.contracts.events import Alert
from dspy_flywheel.store.offsets import Offsets
from dspy_flywheel.store.outbox import insert as insert_events
from dspy_flywheel.store.stateful import StateStore
from dspy_flywheel.trigger.requests import RequestEnvelope
from dspy_flywheel.trigger.state import WorkerState


@dataclass(frozen=True)
class OutboxRow:
    topic: str
    envelope: RequestEnvelope


class TriggerStore(StateStore):
    SERVICE = "trigger"
    COLUMNS = ("state", "view")

    async def load_states(self) -> dict[str, WorkerState]:
        return {w: WorkerState.from_json(w, s) for w, s in (await self._stored_states()).items()}

    async def save(
        self,
        states: Mapping[str, tuple[dict[str, Any], dict[str, Any]]],
        offsets: Offsets,
        outbox: Iterable[OutboxRow] = (),
    ) -> None:
        """Write states (state, view), offsets and new outbox rows atomically."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self._save_states(conn, states, offsets)
            envelopes = [(r.topic, r.envelope) for r in outbox]
            if envelopes:  # keyed by worker, with the job each names
                events = [
                    OutboxEvent(e.event_id, t, e.worker_id, e.event, e.traceparent)
                    for t, e in envelopes
                ]
                job_ids = [e.job_id for _, e in envelopes]
                await insert_events(conn, "trigger_outbox", events, self.scope, job_id=job_ids)


async def fetch_views(
    conn: asyncpg.Connection | asyncpg.Pool, scope: str, worker_id: str | None = None
) -> dict[str, dict[str, Any]]:
    """The service's live view per worker (accuracy, cooldown, in-flight job, note...)."""
    rows = await conn.fetch(
        "SELECT worker_id, view, updated_at FROM trigger_state"
        " WHERE scope = $1 AND ($2::text IS NULL OR worker_id = $2) ORDER BY worker_id",
        scope,
        worker_id,
    )
    return {r["worker_id"]: {**r["view"], "updated_at": r["updated_at"].isoformat()} for r in rows}


async def fetch_alerts(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    scope: str | None = None,
    worker_id: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The trigger's alerts, newest first (its outbox keeps every one; ``published`` is False
    while the relay has not sent it yet). ``scope`` None: every trigger deployment's."""
    rows = await conn.fetch(
        """SELECT record, job_id, traceparent, created_at, sent_at FROM trigger_outbox
           WHERE event_type = 'Alert' AND ($1::text IS NULL OR scope = $1)
             AND ($2::text IS NULL OR worker_id = $2)
           ORDER BY created_at DESC, event_id DESC LIMIT $3""",
        scope,
        worker_id,
        limit,
    )
    return [_alert_view(r) for r in rows]


def _alert_view(row: asyncpg.Record) -> dict[str, Any]:
    record = Alert.from_record(row["record"]).to_record()
    details = record.pop("details_json")
    return {
        **record,
        "details": json.loads(details) if details else {},
        "job_id": row["job_id"] or None,
        "traceparent": row["traceparent"],
        "created_at": row["created_at"].isoformat(),
        "published": row["sent_at"] is not None,
    }
