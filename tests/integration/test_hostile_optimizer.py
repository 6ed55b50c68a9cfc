"""Regressions: an OptimizationRequested with a NUL worker id was retried 5 times, then the
optimizer exited 1 and the valid request behind it never ran. Bad program-updated and ack
records go to their DLQs once (the optimizer owns them) and the optimizer keeps going."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.store import jobs
from tests.integration.helpers import until
from tests.integration.hostile import dead_letters, now_ms, send_event
from tests.integration.hostile import request as bare_request
from tests.integration.optimizer_support import (
    dataset,
    optimizer_settings,
    request,
    running_optimizer,
    send_request,
    store_tickets,
)

pytestmark = pytest.mark.timeout(240)


async def test_bad_records_are_set_aside_and_the_valid_request_behind_runs(
    kafka_settings: KafkaSettings,
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    group_id: str,
    unique: str,
    producer: AIOKafkaProducer,
) -> None:
    worker = f"router-{unique}"
    await store_tickets(db_pool, worker)
    async with running_optimizer(
        optimizer_settings(topics, db_schema, group_id), dataset(db_pool)
    ) as task:
        bad = {
            topics.optimization_requests: await send_event(
                producer,
                topics.optimization_requests,
                "OptimizationRequested",
                bare_request(worker + "\x00"),
            ),
            topics.program_updated: await send_event(
                producer,
                topics.program_updated,
                "ProgramUpdated",
                {
                    "worker_id": worker,
                    "version": 0,  # versions start at 1
                    "program_state_json": "not json",
                    "signature_json": "{}",
                    "optimizer": "BootstrapFewShot",
                    "job_id": None,
                    "holdout_before": None,
                    "holdout_after": None,
                    "timestamp_ms": now_ms(),
                },
            ),
            topics.program_acks: await send_event(
                producer,
                topics.program_acks,
                "ProgramAcknowledged",
                {
                    "worker_id": worker,
                    "instance_id": "i\x00",
                    "version": 1,
                    "status": "serving",
                    "reason": None,
                    "timestamp_ms": 2**62,
                },
            ),
        }
        valid = request(worker)
        await send_request(producer, topics, valid)

        async def ended() -> jobs.Job | None:
            job = await jobs.get(db_pool, valid.job_id)
            return job if job is not None and job.status in jobs.TERMINAL else None

        await until(ended, "the valid request to run", 120)
        for topic, source in bad.items():
            letters = await until(
                lambda t=topic: dead_letters(kafka_settings, t), f"{topic}'s DLQ", 30
            )
            assert letters == {source: 1}
        assert not task.done()
