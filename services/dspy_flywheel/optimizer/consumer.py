"""The optimizer's handlers: optimization requests become queued jobs; acks enter the registry;
published programs are checked (the optimizer owns the ``program-updated`` DLQ: every worker
reads that topic, only this group dead-letters a bad record of it).

They run under ``bus.consume_group``: offsets are committed only after the database commit
(at-least-once in, exactly-once in the database: a redelivered request finds its job id and
does nothing); undecodable or invalid records go to ``<topic>.dlq`` (``bus.RecordGuard``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from dspy_flywheel.contracts.codec import Decoded
from dspy_flywheel.contracts.events import (
    OptimizationRequested,
    ProgramAcknowledged,
    ProgramUpdated,
)
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.contracts.validate import program_update
from dspy_flywheel.metrics import optimizer as optimizer_metrics
from dspy_flywheel.store import jobs, outbox, programs

log = logging.getLogger(__name__)


class InvalidRecord(ValueError):
    retriable = False


def job_request(decoded: Decoded) -> jobs.JobRequest:
    """A JobRequest from an OptimizationRequested event; InvalidRecord when it cannot be one."""
    r = decoded.event
    if not isinstance(r, OptimizationRequested):
        raise InvalidRecord(f"unexpected event type {r.event_type}")
    try:
        params = json.loads(r.optimizer_params_json or "{}")
        evidence = json.loads(r.evidence_json or "{}")
    except ValueError as exc:
        raise InvalidRecord(f"bad JSON in request: {exc}") from exc
    if not isinstance(params, dict) or not r.job_id or not r.worker_id:
        raise InvalidRecord("request needs job_id, worker_id and object optimizer_params_json")
    return jobs.JobRequest(
        job_id=r.job_id,
        worker_id=r.worker_id,
        optimizer=r.optimizer,
        reason=r.reason or "manual",
        params=params,
        program_ref=r.program_ref,
        metric_ref=r.metric_ref,
        requested_by=r.requested_by or "system",
        evidence=evidence if isinstance(evidence, dict) else {"value": evidence},
        traceparent=decoded.traceparent,
        request_event_id=decoded.event_id,
    )


@dataclass(frozen=True)
class RequestIntake:
    """Handles OptimizationRequested: insert the job once, with its ``queued`` status event."""

    pool: asyncpg.Pool
    topics: Topics
    on_queued: Callable[[], None]

    async def __call__(self, decoded: Decoded) -> None:
        req = job_request(decoded)
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await jobs.enqueue(conn, req)
            if inserted:
                await outbox.add_status(
                    conn,
                    self.topics.optimization_status,
                    req.job_id,
                    req.worker_id,
                    "queued",
                    progress=0.0,
                    message=f"{req.reason} request by {req.requested_by}",
                    traceparent=req.traceparent,
                )
        if inserted:
            optimizer_metrics.jobs.add(1, {"flywheel.job.state": "queued"})
            log.info("queued job %s for worker %s (%s)", req.job_id, req.worker_id, req.optimizer)
            self.on_queued()
        else:
            log.info("job %s already known; redelivered request ignored", req.job_id)


@dataclass(frozen=True)
class AckIntake:
    """Handles ProgramAcknowledged: one registry row per event id."""

    pool: asyncpg.Pool

    async def __call__(self, decoded: Decoded) -> None:
        r = decoded.event
        if not isinstance(r, ProgramAcknowledged):
            raise InvalidRecord(f"unexpected event type {r.event_type}")
        await programs.record_ack(
            self.pool,
            programs.Ack(
                event_id=decoded.event_id or f"{r.worker_id}:{r.instance_id}:{r.timestamp_ms}",
                worker_id=r.worker_id,
                instance_id=r.instance_id,
                version=r.version,
                status=r.status,
                reason=r.reason,
                traceparent=decoded.traceparent,
                acked_at=datetime.fromtimestamp(r.timestamp_ms / 1000, UTC),
            ),
        )


async def check_update(decoded: Decoded) -> None:
    """A ProgramUpdated as every worker will read it (InvalidInput/InvalidRecord if not)."""
    if not isinstance(decoded.event, ProgramUpdated):
        raise InvalidRecord(f"unexpected event type {decoded.event_type}")
    program_update(decoded.event)
