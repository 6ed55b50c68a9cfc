"""Consumer-group intake: optimization requests become queued jobs; acks enter the registry.

Offsets are committed only after the database commit (at-least-once in, exactly-once in the
database: a redelivered request finds its job id and does nothing). Undecodable or invalid
records go to ``<topic>.dlq`` with error headers, then the offset moves on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeAlias

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from dspy_flywheel.contracts.codec import Decoded, DecodeError, decode
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.optimizer import outbox
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.store import jobs, programs

log = logging.getLogger(__name__)
Record: TypeAlias = ConsumerRecord[bytes, bytes]
Handler = Callable[[Decoded], Awaitable[None]]


class InvalidRecord(ValueError):
    retriable = False


def job_request(decoded: Decoded) -> jobs.JobRequest:
    """A JobRequest from an OptimizationRequested event; InvalidRecord when it cannot be one."""
    if decoded.event_type != "OptimizationRequested":
        raise InvalidRecord(f"unexpected event type {decoded.event_type}")
    r = decoded.record
    try:
        params = json.loads(r.get("optimizer_params_json") or "{}")
        evidence = json.loads(r.get("evidence_json") or "{}")
    except ValueError as exc:
        raise InvalidRecord(f"bad JSON in request: {exc}") from exc
    if not isinstance(params, dict) or not r.get("job_id") or not r.get("worker_id"):
        raise InvalidRecord("request needs job_id, worker_id and object optimizer_params_json")
    return jobs.JobRequest(
        job_id=r["job_id"],
        worker_id=r["worker_id"],
        optimizer=r["optimizer"],
        reason=r.get("reason") or "manual",
        params=params,
        program_ref=r.get("program_ref"),
        metric_ref=r.get("metric_ref"),
        requested_by=r.get("requested_by") or "system",
        evidence=evidence if isinstance(evidence, dict) else {"value": evidence},
        traceparent=decoded.traceparent,
        request_event_id=decoded.event_id,
    )


class RequestIntake:
    """Handles OptimizationRequested: insert the job once, with its ``queued`` status event."""

    def __init__(self, pool: asyncpg.Pool, topics: Topics, on_queued: Callable[[], None]) -> None:
        self.pool = pool
        self.topics = topics
        self.on_queued = on_queued

    async def __call__(self, decoded: Decoded) -> None:
        req = job_request(decoded)
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await jobs.enqueue(conn, req)
            if inserted:
                await outbox.add(
                    conn,
                    self.topics.optimization_status,
                    req.worker_id,
                    "OptimizationStatusChanged",
                    outbox.status_record(
                        req.job_id,
                        req.worker_id,
                        "queued",
                        progress=0.0,
                        message=f"{req.reason} request by {req.requested_by}",
                    ),
                    traceparent=req.traceparent,
                )
        if inserted:
            log.info("queued job %s for worker %s (%s)", req.job_id, req.worker_id, req.optimizer)
            self.on_queued()
        else:
            log.info("job %s already known; redelivered request ignored", req.job_id)


class AckIntake:
    """Handles ProgramAcknowledged: one registry row per event id."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def __call__(self, decoded: Decoded) -> None:
        if decoded.event_type != "ProgramAcknowledged":
            raise InvalidRecord(f"unexpected event type {decoded.event_type}")
        r = decoded.record
        await programs.record_ack(
            self.pool,
            programs.Ack(
                event_id=decoded.event_id
                or f"{r['worker_id']}:{r['instance_id']}:{r['timestamp_ms']}",
                worker_id=r["worker_id"],
                instance_id=r["instance_id"],
                version=r.get("version"),
                status=r["status"],
                reason=r.get("reason"),
                traceparent=decoded.traceparent,
                acked_at=datetime.fromtimestamp(r["timestamp_ms"] / 1000, UTC),
            ),
        )


async def _to_dlq(producer: AIOKafkaProducer, record: Record, exc: Exception, name: str) -> None:
    headers = [
        *(record.headers or []),
        ("dlq_error", f"{type(exc).__name__}: {exc}".encode()[:1000]),
        ("dlq_retriable", str(bool(getattr(exc, "retriable", False))).lower().encode()),
        ("dlq_source", f"{record.topic}:{record.partition}:{record.offset}".encode()),
        ("dlq_consumer", name.encode()),
    ]
    await producer.send_and_wait(
        Topics.dlq(record.topic), record.value, key=record.key, headers=headers
    )
    log.warning("sent %s[%d]@%d to the DLQ: %s", record.topic, record.partition, record.offset, exc)


async def consume(
    kafka: KafkaSettings,
    topic: str,
    group_id: str,
    handler: Handler,
    producer: AIOKafkaProducer,
    stop: asyncio.Event,
    *,
    name: str,
    ready: asyncio.Event | None = None,
) -> None:
    """Run ``handler`` for each record of ``topic`` in consumer group ``group_id`` until stop."""
    consumer = AIOKafkaConsumer(
        topic,
        **kafka.client_kwargs(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=200,
    )
    await consumer.start()
    if ready is not None:
        ready.set()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    await _handle(record, handler, producer, name)
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()


async def _handle(record: Record, handler: Handler, producer: AIOKafkaProducer, name: str) -> None:
    try:
        decoded = decode(record.value or b"", record.headers)
        await handler(decoded)
    except (DecodeError, InvalidRecord, KeyError, TypeError) as exc:
        await _to_dlq(producer, record, exc, name)
    except Exception as exc:  # DB down etc.: retry the record rather than lose it
        log.exception(
            "handling %s[%d]@%d failed; retrying", record.topic, record.partition, record.offset
        )
        await asyncio.sleep(1.0)
        await _retry(record, handler, producer, name, exc)


async def _retry(
    record: Record,
    handler: Handler,
    producer: AIOKafkaProducer,
    name: str,
    first: Exception,
    attempts: int = 5,
) -> None:
    last: Exception = first
    for attempt in range(attempts):
        try:
            await handler(decode(record.value or b"", record.headers))
            return
        except Exception as exc:
            last = exc
            await asyncio.sleep(min(30.0, 2.0**attempt))
    raise RuntimeError(f"giving up on {record.topic}[{record.partition}]@{record.offset}") from last


def dlq_topics(topics: Topics) -> list[str]:
    return [Topics.dlq(topics.optimization_requests), Topics.dlq(topics.program_acks)]
