"""Shared helpers for the optimizer and manager integration tests (no tests here); the generic
ones (``until``, ``new_traceparent``) are in ``helpers``.

Training examples go into the collector's ``training_examples`` table through its repository
(``store.datasets.insert_records``, encrypted with a per-session key); the optimizer reads them
back with ``CollectorDataset`` exactly as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from dspy_flywheel.bus import publish, start_producer, stop_producer
from dspy_flywheel.contracts.codec import Decoded
from dspy_flywheel.contracts.events import OptimizationRequested
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.optimizer.app import run
from dspy_flywheel.optimizer.dataset import CollectorDataset, DatasetSource
from dspy_flywheel.optimizer.settings import OptimizerSettings
from dspy_flywheel.security.crypto import Cipher, generate_key, parse_keys
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.store.datasets import ExportRecord, insert_records
from tests.fixtures import fake_task
from tests.integration.helpers import DEADLINE_S, EventWatch, until

PROGRAM_REF = "tests.fixtures.fake_task:TicketRouter"
# Requests here name their program directly (no worker registered one): allow-list them.
ALLOWED_REFS = "tests.fixtures.fake_task:*,tests.integration.test_optimizer_failures:*"
DEMO_LM = "tests.fixtures.fake_task:make_lm"
OBLIVIOUS_LM = "tests.fixtures.fake_task:make_oblivious_lm"
TERMINAL = {"succeeded", "rejected", "failed", "cancelled"}


ENCRYPTION_KEYS = f"opt-test:{generate_key()}"  # FLYWHEEL_ENCRYPTION_KEYS for child processes


def cipher_for_tests() -> Cipher:
    return Cipher(parse_keys(ENCRYPTION_KEYS))


async def store_tickets(pool: asyncpg.Pool, worker_id: str, n: int = 60, seed: int = 0) -> int:
    """Store ``n`` labeled tickets for ``worker_id`` (the code's program answered them wrong).

    Their row ids follow whatever the schema already holds, and the job's split hashes them:
    a test asserting a job's exact scores uses ``private_schema`` (ids from 1)."""
    return await store_labeled(pool, worker_id, fake_task.tickets(n, seed))


async def store_labeled(
    pool: asyncpg.Pool,
    worker_id: str,
    examples: list[dict[str, Any]],
    worker_type: str = "router",
    *,
    has_label: bool = True,
) -> int:
    """Store labeled ``examples`` (``{"inputs": {...}, "outputs": {...}}``) for ``worker_id`` as
    the collector does, each answered wrong (every output field ``unknown``); without
    ``has_label`` as if no feedback came (no label stored)."""
    now = datetime.now(UTC).isoformat()
    records = [
        ExportRecord(
            event_id=f"{worker_id}-e{i}",
            execution_id=f"{worker_id}-x{i}",
            worker_id=worker_id,
            worker_type=worker_type,
            program_version=None,
            success=True,
            score=0.0,
            latency_ms=5.0,
            lm_calls=1,
            prompt_tokens=40,
            completion_tokens=3,
            has_label=has_label,
            label_source="feedback" if has_label else None,
            feedback_event_id=None,
            feedback_at=None,
            executed_at=now,
            created_at=now,
            inputs=t["inputs"],
            outputs=dict.fromkeys(t["outputs"], "unknown"),
            label=t["outputs"] if has_label else None,
        )
        for i, t in enumerate(examples)
    ]
    async with pool.acquire() as conn:
        inserted: int = await insert_records(conn, cipher_for_tests(), records)
    return inserted


def dataset(pool: asyncpg.Pool) -> CollectorDataset:
    return CollectorDataset(pool, cipher_for_tests())


class JobWatch(EventWatch):
    """An ``EventWatch`` that follows optimization jobs to their end."""

    def statuses(self, job_id: str) -> list[str]:
        return [d.event.status for d in self.of("OptimizationStatusChanged", job_id=job_id)]

    async def terminal(self, job_id: str, within_s: float = DEADLINE_S) -> Decoded:
        async def done() -> Decoded | None:
            found = [
                d
                for d in self.of("OptimizationStatusChanged", job_id=job_id)
                if d.event.status in TERMINAL
            ]
            return found[-1] if found else None

        result: Decoded = await until(done, f"job {job_id} to finish", within_s)
        return result

    async def run(
        self,
        producer: AIOKafkaProducer,
        topics: Topics,
        req: OptimizationRequested,
        *,
        traceparent: str | None = None,
        within_s: float = DEADLINE_S,
    ) -> Decoded:
        """Send the request ``req``; return its job's final status event."""
        await send_request(producer, topics, req, traceparent)
        return await self.terminal(req.job_id, within_s)

    async def redeliver(
        self, producer: AIOKafkaProducer, topics: Topics, req: OptimizationRequested
    ) -> OptimizationRequested:
        """Send ``req`` again, then a sentinel request of the same worker (same key, same
        partition); once the sentinel is done, the duplicate was consumed. Returns it."""
        await send_request(producer, topics, req)
        sentinel = request(req.worker_id)
        await self.run(producer, topics, sentinel)
        return sentinel


def optimizer_settings(
    topics: Topics, schema: str, group_id: str, **overrides: Any
) -> OptimizerSettings:
    values: dict[str, Any] = {
        "FLYWHEEL_TOPIC_PREFIX": topics.prefix,
        "FLYWHEEL_DB_SCHEMA": schema,
        "group_id": group_id,
        "acks_group_id": f"{group_id}-acks",
        "FLYWHEEL_OPTIMIZER_ALLOWED_REFS": ALLOWED_REFS,
        "lm_ref": DEMO_LM,
        "min_examples": 20,
        # these tests check a job's mechanics on 60 examples (holdout 12); the gate's own
        # sizes and statistics are tested in test_optimizer_gate.py
        "min_holdout": 10,
        "heartbeat_s": 0.5,
        "stale_after_s": 5.0,
        "progress_interval_s": 0.2,
        "report_interval_s": 0.2,
        "poll_interval_s": 0.5,
        "wall_time_s": 120.0,
        "memory_mb": 4096,
    }
    values.update(overrides)
    return OptimizerSettings.model_validate(values)


def request(
    worker_id: str,
    *,
    job_id: str | None = None,
    optimizer: str = "BootstrapFewShot",
    params: dict[str, Any] | None = None,
    program_ref: str | None = PROGRAM_REF,
    metric_ref: str | None = None,
    reason: str = "manual",
) -> OptimizationRequested:
    return OptimizationRequested(
        job_id=job_id or f"job-{secrets.token_hex(6)}",
        worker_id=worker_id,
        reason=reason,
        optimizer=optimizer,
        optimizer_params_json=json.dumps(params or {}),
        requested_by="test",
        program_ref=program_ref,
        metric_ref=metric_ref,
        timestamp_ms=int(time.time() * 1000),
    )


async def send_request(
    producer: AIOKafkaProducer,
    topics: Topics,
    req: OptimizationRequested,
    traceparent: str | None = None,
) -> None:
    await publish(
        producer, topics.optimization_requests, req.worker_id, req, traceparent=traceparent
    )


@contextlib.asynccontextmanager
async def running_optimizer(
    settings: OptimizerSettings, source: DatasetSource
) -> AsyncIterator[asyncio.Task[None]]:
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(settings, stop=stop, ready=ready, dataset=source))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait([task, waiter], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    assert ready.is_set(), "optimizer did not become ready"
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def run_job(
    kafka: KafkaSettings,
    topics: Topics,
    pool: asyncpg.Pool,
    settings: OptimizerSettings,
    req: OptimizationRequested,
) -> tuple[Decoded, JobWatch]:
    """Run an optimizer, send one request, return its final status and what was seen."""
    async with (
        JobWatch(kafka, topics.optimization_status, topics.program_updated) as watch,
        running_optimizer(settings, dataset(pool)),
    ):
        producer = await start_producer(kafka)
        try:
            final = await watch.run(producer, topics, req)
        finally:
            await stop_producer(producer)
    return final, watch
