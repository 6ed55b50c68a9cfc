"""References are not code paths from the network: the optimizer imports only what the worker
registered (its TriggerConfig) or what its allow-list names.

The canary module writes a file when it is imported, so "not imported" is observed, not
inferred: a job naming it without registration is refused and the file never appears; the same
reference registered by the worker is imported by the compile child and the file appears.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.store import jobs
from dspy_flywheel.trigger import TriggerPolicyConfig, write_config
from tests.integration.helpers import until
from tests.integration.optimizer_support import (
    PROGRAM_REF,
    dataset,
    optimizer_settings,
    request,
    running_optimizer,
    send_request,
    store_tickets,
)

pytestmark = pytest.mark.timeout(240)
CANARY = "tests.integration.ref_canary:build"


async def final(pool: asyncpg.Pool, job_id: str) -> jobs.Job:
    async def done() -> jobs.Job | None:
        job = await jobs.get(pool, job_id)
        return job if job is not None and job.status in jobs.TERMINAL else None

    result: jobs.Job = await until(done, f"job {job_id} to end", 120)
    return result


async def test_an_unregistered_reference_is_never_imported(
    kafka_settings: KafkaSettings,
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    group_id: str,
    unique: str,
    tmp_path: Path,
    producer: AIOKafkaProducer,
) -> None:
    marker = tmp_path / "imported"
    settings = optimizer_settings(
        topics, db_schema, group_id, child_env={"FLYWHEEL_REF_CANARY": str(marker)}
    )
    stranger, registered = f"stranger-{unique}", f"owner-{unique}"
    for worker in (stranger, registered):
        await store_tickets(db_pool, worker)
    # what the SDK's decorator publishes for a worker whose program is the canary
    await write_config(
        kafka_settings,
        topics.trigger_config,
        TriggerPolicyConfig(
            worker_id=registered, policy="manual", program_ref=CANARY, updated_by="sdk"
        ),
    )
    refused = [
        request(stranger, program_ref=CANARY),  # names code nobody registered
        request(stranger, program_ref="tempfile:mkdtemp"),  # the reported attack
        request(stranger, program_ref=PROGRAM_REF, metric_ref="tempfile:mkdtemp"),
    ]
    async with running_optimizer(settings, dataset(db_pool)):
        for req in refused:
            await send_request(producer, topics, req)
        for req in refused:
            job = await final(db_pool, req.job_id)
            assert job.status == "failed"
            assert job.message is not None
            assert "is not registered for worker" in job.message, job.message
        assert not marker.exists()  # the optimizer never imported the canary

        allowed = request(registered, program_ref=CANARY)
        await send_request(producer, topics, allowed)
        await final(db_pool, allowed.job_id)
        assert marker.exists()  # the same reference, registered: imported (control)
