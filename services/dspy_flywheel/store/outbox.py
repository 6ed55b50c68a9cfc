"""The optimizer's transactional outbox (``optimizer_outbox``): events written with the state
they describe, relayed to Kafka by ``bus.OutboxRelay``.

``add`` runs inside the caller's transaction, so a program version and its ProgramUpdated (or a
job's status and its status event) are committed together or not at all. ``OutboxTable``
is the relay's source: rows are locked ``SKIP LOCKED``, so several optimizer instances relay
side by side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from dspy_flywheel.bus.outbox import OutboxEvent, Send, note_refused, refusal
from dspy_flywheel.contracts.codec import encode
from dspy_flywheel.contracts.events import (
    Event,
    OptimizationStatusChanged,
    event_from_record,
    now_ms,
)
from dspy_flywheel.contracts.ids import new_id
from dspy_flywheel.store.pool import Executor, placeholders


async def add(
    db: Executor, topic: str, key: str | None, event: Event, *, traceparent: str | None = None
) -> str:
    """Queue an event; returns its event id. Encodes once now to fail fast on a bad value."""
    event_id = new_id()
    encode(event, event_id=event_id)
    await insert(db, "optimizer_outbox", [OutboxEvent(event_id, topic, key, event, traceparent)])
    return event_id


async def insert(
    db: Executor,
    table: str,
    events: Sequence[OutboxEvent],
    scope: str | None = None,
    **more: Sequence[Any],
) -> None:
    """Queue ``events`` in the outbox ``table`` (``OUTBOX_TABLES``) in the caller's transaction,
    with ``scope`` where the table has one and the ``more`` columns (a value per event); an
    event id already there is skipped."""
    if scope is not None:
        more = {**more, "scope": [scope] * len(events)}
    key = OUTBOX_TABLES[table].key
    columns = ", ".join(["event_id", "topic", key, "event_type", "record", "traceparent", *more])
    rows = [(e.event_id, e.topic, e.key, e.event.event_type, e.event.to_record()) for e in events]
    values = zip(rows, events, *more.values(), strict=True)
    await db.executemany(
        f"INSERT INTO {table} ({columns}) VALUES ({placeholders(6 + len(more))})"
        " ON CONFLICT (event_id) DO NOTHING",
        [(*row, e.traceparent, *extra) for row, e, *extra in values],
    )


async def add_status(
    db: Executor,
    topic: str,
    job_id: str,
    worker_id: str,
    status: str,
    *,
    progress: float | None = None,
    message: str | None = None,
    details: Mapping[str, Any] | None = None,
    traceparent: str | None = None,
) -> str:
    """Queue the job's ``OptimizationStatusChanged``."""
    event = OptimizationStatusChanged(
        job_id=job_id,
        worker_id=worker_id,
        status=status,
        progress=progress,
        message=message,
        details_json=json.dumps(dict(details or {}), default=str),
        timestamp_ms=now_ms(),
    )
    return await add(db, topic, worker_id, event, traceparent=traceparent)


@dataclass(frozen=True)
class _Table:
    row_id: str  # the column that names a row
    key: str  # the column that holds the Kafka record key
    sent: str  # the column set when the row is published
    order: str  # the columns that order the rows (oldest first)


OUTBOX_TABLES: Final = {
    "optimizer_outbox": _Table("id", "key", "published_at", "id"),
    "rollout_outbox": _Table("id", "key", "published_at", "id"),
    "trigger_outbox": _Table("event_id", "worker_id", "sent_at", "created_at, event_id"),
}


async def relay_table(
    pool: asyncpg.Pool, table: str, limit: int, send: Send, scope: str | None = None
) -> int:
    """``bus.OutboxSource.relay`` over an outbox table (``OUTBOX_TABLES``: event_id, topic,
    event_type, record, traceparent and the columns named there; ``scope`` for the tables that
    have one). Rows are locked ``SKIP LOCKED``: instances relay side by side. A row that never
    can be sent is marked dead with its reason (``bus.outbox``), its successors go on."""
    spec = OUTBOX_TABLES.get(table)
    if spec is None:  # a table name is SQL text: only ours
        raise ValueError(f"not an outbox table: {table!r}")
    scoped = "AND scope = $2" if scope is not None else ""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"""SELECT {spec.row_id} AS row_id, event_id, topic, {spec.key} AS key, event_type,
                       record, traceparent
                FROM {table} WHERE {spec.sent} IS NULL AND dead_at IS NULL {scoped}
                ORDER BY {spec.order} LIMIT $1 FOR UPDATE SKIP LOCKED""",
            limit,
            *([scope] if scope is not None else []),
        )
        if not rows:
            return 0
        events, refused = [], {}
        for r in rows:
            try:
                event = event_from_record(r["event_type"], r["record"])
            except (ValueError, TypeError) as exc:  # the stored record is not that event
                refused[r["event_id"]] = reason = refusal(exc)
                note_refused(r["topic"], r["event_type"], r["event_id"], reason)
                continue
            events.append(OutboxEvent(r["event_id"], r["topic"], r["key"], event, r["traceparent"]))
        refused |= await send(events)
        await conn.execute(
            f"UPDATE {table} SET {spec.sent} = now() WHERE {spec.row_id} = ANY($1)",
            [r["row_id"] for r in rows if r["event_id"] not in refused],
        )
        await conn.executemany(
            f"UPDATE {table} SET dead_at = now(), dead_reason = $2 WHERE event_id = $1",
            list(refused.items()),
        )
    return len(rows)


@dataclass(frozen=True)
class OutboxTable:
    """``bus.OutboxSource`` over an outbox table (its ``scope``'s rows, where it has one)."""

    pool: asyncpg.Pool
    table: str = "optimizer_outbox"
    scope: str | None = None

    async def relay(self, limit: int, send: Send) -> int:
        return await relay_table(self.pool, self.table, limit, send, self.scope)
