"""Transactional outbox: events are rows written with the state they describe, then relayed.

``add`` runs inside the caller's transaction, so a program version and its ProgramUpdated (or a
job's status and its status event) are committed together or not at all. ``OutboxRelay``
publishes pending rows in id order and marks them sent; rows are locked ``SKIP LOCKED`` so
several optimizer instances can relay side by side. A crash between send and mark re-sends the
row with the **same** ``event_id``, which consumers dedupe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from dspy_flywheel.contracts.codec import encode
from dspy_flywheel.contracts.ids import new_id
from dspy_flywheel.store.jobs import Executor

log = logging.getLogger(__name__)


async def add(
    db: Executor,
    topic: str,
    key: str | None,
    event_type: str,
    record: Mapping[str, Any],
    *,
    traceparent: str | None = None,
) -> str:
    """Queue an event; returns its event id. Encodes once now to fail fast on a bad record."""
    event_id = new_id()
    encode(event_type, record, event_id=event_id)
    await db.execute(
        """INSERT INTO optimizer_outbox (event_id, topic, key, event_type, record, traceparent)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        event_id,
        topic,
        key,
        event_type,
        dict(record),
        traceparent,
    )
    return event_id


def status_record(
    job_id: str,
    worker_id: str,
    status: str,
    *,
    progress: float | None = None,
    message: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    import json

    return {
        "job_id": job_id,
        "worker_id": worker_id,
        "status": status,
        "progress": progress,
        "message": message,
        "details_json": json.dumps(dict(details or {}), default=str),
        "timestamp_ms": int(time.time() * 1000),
    }


class OutboxRelay:
    """Publishes pending outbox rows; ``wake()`` after a commit to send without delay."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        *,
        poll_interval_s: float = 0.5,
        batch_size: int = 100,
    ) -> None:
        self.pool = pool
        self.producer = producer
        self.poll_interval_s = poll_interval_s
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        self.published = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                sent = await self.relay_once()
            except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                log.warning("outbox relay failed, will retry: %s", exc)
                sent = 0
            except Exception:
                log.exception("outbox relay failed, will retry")
                sent = 0
            if sent >= self.batch_size:
                continue
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)

    async def relay_once(self) -> int:
        """Send one batch of pending rows in order; returns how many were sent."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT id, event_id, topic, key, event_type, record, traceparent
                   FROM optimizer_outbox WHERE published_at IS NULL
                   ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""",
                self.batch_size,
            )
            if not rows:
                return 0
            futures = []
            for row in rows:
                encoded = encode(
                    row["event_type"],
                    row["record"],
                    event_id=row["event_id"],
                    traceparent=row["traceparent"],
                )
                futures.append(
                    await self.producer.send(
                        row["topic"],
                        encoded.value,
                        key=row["key"].encode() if row["key"] is not None else None,
                        headers=encoded.headers,
                    )
                )
            await asyncio.gather(*futures)
            await conn.execute(
                "UPDATE optimizer_outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                [row["id"] for row in rows],
            )
        self.published += len(rows)
        return len(rows)
