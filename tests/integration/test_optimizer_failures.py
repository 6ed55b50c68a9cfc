"""Jobs that cannot finish normally still end in a defined state, with the reason.

Killed optimizer (real process, SIGKILL) → failed "optimizer restarted mid-job", child gone,
redelivery not run; cancel; wall-time, memory and LM-budget limits; 20 % injected LM errors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.store import jobs
from tests.fixtures.fake_task import TicketRouter
from tests.integration.helpers import until
from tests.integration.optimizer_support import (
    ALLOWED_REFS,
    ENCRYPTION_KEYS,
    JobWatch,
    dataset,
    optimizer_settings,
    request,
    running_optimizer,
    send_request,
    store_tickets,
)

pytestmark = pytest.mark.timeout(240)
SLOW = {"FLYWHEEL_FAKE_LATENCY_S": "0.05"}
SLOW_OPTIMIZER = "BootstrapFewShotWithRandomSearch"


class HungryRouter(TicketRouter):
    """A program whose construction needs far more memory than the job may use."""

    def __init__(self) -> None:
        super().__init__()
        self.ballast = bytearray(3 * 1024**3)


def child_pids(job_id: str) -> list[int]:
    """Processes whose command line names this job's work directory (the compile child)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if f"job-{job_id}-".encode() in cmdline and b"optimizer.job" in cmdline:
            found.append(int(entry.name))
    return found


async def compiling(watch: JobWatch, job_id: str) -> bool:
    return any(
        json.loads(d.event.details_json).get("phase") == "compile"
        for d in watch.of("OptimizationStatusChanged", job_id=job_id, status="running")
    )


async def test_killed_optimizer_fails_job_and_ignores_redelivery(
    kafka_settings: KafkaSettings,
    producer: AIOKafkaProducer,
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    group_id: str,
    unique: str,
) -> None:
    env = {
        **os.environ,
        "FLYWHEEL_TOPIC_PREFIX": topics.prefix,
        "FLYWHEEL_DB_SCHEMA": db_schema,
        "FLYWHEEL_OPTIMIZER_GROUP_ID": group_id,
        "FLYWHEEL_OPTIMIZER_ACKS_GROUP_ID": f"{group_id}-acks",
        "FLYWHEEL_OPTIMIZER_LM_REF": "tests.fixtures.fake_task:make_lm",
        "FLYWHEEL_OPTIMIZER_CHILD_ENV": json.dumps(SLOW),
        "FLYWHEEL_ENCRYPTION_KEYS": ENCRYPTION_KEYS,
        "FLYWHEEL_OPTIMIZER_HEARTBEAT_S": "0.5",
        "FLYWHEEL_OPTIMIZER_ALLOWED_REFS": ALLOWED_REFS,
        "FLYWHEEL_OPTIMIZER_STALE_AFTER_S": "60",
        "FLYWHEEL_OPTIMIZER_MIN_HOLDOUT": "10",  # 60 examples: a holdout of 12 (as the helper)
    }
    worker = f"router-{unique}"
    req = request(worker, optimizer=SLOW_OPTIMIZER)
    await store_tickets(db_pool, worker)
    # the real service entry point, killed for real
    proc = subprocess.Popen(  # noqa: ASYNC220  # Popen returns at once; the kill is the point
        [sys.executable, "-m", "dspy_flywheel.optimizer"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with JobWatch(kafka_settings, topics.optimization_status) as watch:
            await send_request(producer, topics, req)
            await until(lambda: compiling(watch, req.job_id), "compile to start")
            children = child_pids(req.job_id)
            assert len(children) == 1
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

            async def child_gone() -> bool:
                return not child_pids(req.job_id)

            await until(child_gone, "the orphaned compile child to exit", 15)
            row = await jobs.get(db_pool, req.job_id)
            assert row is not None
            assert row.status == "running"

            settings = optimizer_settings(topics, db_schema, group_id)
            async with running_optimizer(settings, dataset(db_pool)):
                final = await watch.terminal(req.job_id)
                running_before = watch.statuses(req.job_id).count("running")
                await watch.redeliver(producer, topics, req)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert final.event.status == "failed"
    assert final.event.message.startswith("optimizer restarted mid-job")
    assert watch.statuses(req.job_id).count("running") == running_before
    assert watch.statuses(req.job_id).count("queued") == 1
    row = await jobs.get(db_pool, req.job_id)
    assert row is not None
    assert row.status == "failed"
    assert row.details["failure"] == "orphaned"


async def test_cancel_kills_the_child(
    kafka_settings: KafkaSettings,
    producer: AIOKafkaProducer,
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    group_id: str,
    unique: str,
) -> None:
    settings = optimizer_settings(topics, db_schema, group_id, child_env=SLOW)
    req = request(f"router-{unique}", optimizer=SLOW_OPTIMIZER)
    await store_tickets(db_pool, req.worker_id)
    async with (
        JobWatch(kafka_settings, topics.optimization_status) as watch,
        running_optimizer(settings, dataset(db_pool)),
    ):
        await send_request(producer, topics, req)
        await until(lambda: compiling(watch, req.job_id), "compile to start")
        assert child_pids(req.job_id)
        await jobs.request_cancel(db_pool, req.job_id)
        final = await watch.terminal(req.job_id, within_s=15)
    assert final.event.status == "cancelled"
    assert child_pids(req.job_id) == []


@pytest.mark.parametrize(
    ("overrides", "program_ref", "kind", "message"),
    [
        (
            {"wall_time_s": 3.0, "child_env": SLOW},
            None,
            "timeout",
            "timeout: wall-time limit of 3 s exceeded",
        ),
        (
            {"max_lm_calls": 30},
            None,
            "budget",
            "budget: LM call budget exhausted: 30 calls (limit 30)",
        ),
        (
            {"memory_mb": 1024},
            "tests.integration.test_optimizer_failures:HungryRouter",
            "memory",
            "memory: memory limit of 1024 MB exceeded",
        ),
    ],
    ids=["wall-time", "lm-budget", "memory"],
)
async def test_limits_end_the_job_with_reason(
    kafka_settings: KafkaSettings,
    producer: AIOKafkaProducer,
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    group_id: str,
    unique: str,
    overrides: dict[str, object],
    program_ref: str | None,
    kind: str,
    message: str,
) -> None:
    settings = optimizer_settings(topics, db_schema, group_id, **overrides)
    req = request(
        f"router-{unique}",
        optimizer=SLOW_OPTIMIZER,
        **({"program_ref": program_ref} if program_ref else {}),
    )
    await store_tickets(db_pool, req.worker_id)
    async with (
        JobWatch(kafka_settings, topics.optimization_status) as watch,
        running_optimizer(settings, dataset(db_pool)),
    ):
        final = await watch.run(producer, topics, req)
    assert final.event.status == "failed"
    assert final.event.message == message
    row = await jobs.get(db_pool, req.job_id)
    assert row is not None
    assert row.details["failure"] == kind
    assert child_pids(req.job_id) == []


async def test_injected_lm_errors_end_in_defined_states(
    kafka_settings: KafkaSettings,
    producer: AIOKafkaProducer,
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    group_id: str,
    unique: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    jobs_n = 6
    settings = optimizer_settings(topics, db_schema, group_id)
    reqs = [request(f"router-{unique}-{i}") for i in range(jobs_n)]
    for req in reqs:
        await store_tickets(db_pool, req.worker_id, seed=1)
    finals = []
    async with (
        JobWatch(kafka_settings, topics.optimization_status) as watch,
        running_optimizer(settings, dataset(db_pool)),
    ):
        for i, req in enumerate(reqs):
            # a different fault pattern per job: the seed travels in the child's env
            settings.child_env.update(
                {"FLYWHEEL_FAKE_ERROR_RATE": "0.2", "FLYWHEEL_FAKE_SEED": str(i)}
            )
            finals.append(await watch.run(producer, topics, req, within_s=90))
    outcomes = Counter(f.event.status for f in finals)
    assert sum(outcomes.values()) == jobs_n
    assert set(outcomes) <= {"succeeded", "rejected", "failed"}
    rows = [await jobs.get(db_pool, r.job_id) for r in reqs]
    assert all(r is not None and r.terminal for r in rows)
    lm_errors = [r.details.get("lm_errors") for r in rows if r is not None]
    with capsys.disabled():
        print(
            f"\ninjected_lm_errors jobs={jobs_n} outcomes={dict(outcomes)} "
            f"lm_errors_per_job={lm_errors} "
            f"messages={[r.message for r in rows if r is not None and r.status == 'failed']}"
        )
