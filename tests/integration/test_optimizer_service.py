"""Optimizer service on the real broker and database with the fake LM.

Better candidate → ProgramUpdated + registry row; not better → rejected, nothing published;
a redelivered request is not run twice; a too-small dataset is refused with a reason.
"""

from __future__ import annotations

import json

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.optimizer.job import served_answers
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.store import jobs, programs
from dspy_flywheel.store.datasets import get_snapshot
from tests.fixtures import fake_task
from tests.integration.optimizer_support import (
    OBLIVIOUS_LM,
    JobWatch,
    dataset,
    optimizer_settings,
    request,
    running_optimizer,
    store_labeled,
    store_tickets,
)

pytestmark = pytest.mark.timeout(180)


async def test_better_candidate_is_published_once(
    kafka_settings: KafkaSettings,
    producer: AIOKafkaProducer,
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    group_id: str,
    unique: str,
) -> None:
    settings = optimizer_settings(topics, db_schema, group_id)
    worker = f"router-{unique}"
    first = request(worker)
    assert await store_tickets(db_pool, worker, 60) == 60
    async with (
        JobWatch(kafka_settings, topics.optimization_status, topics.program_updated) as watch,
        running_optimizer(settings, dataset(db_pool)),
    ):
        final = await watch.run(producer, topics, first)
        assert final.event.status == "succeeded", final.event.message
        sentinel = await watch.redeliver(producer, topics, first)

    statuses = watch.statuses(first.job_id)
    assert statuses[0] == "queued"
    assert statuses[-1] == "succeeded"
    assert statuses.count("queued") == 1
    assert "running" in statuses
    assert statuses.count("succeeded") == 1
    updates = watch.of("ProgramUpdated", worker_id=worker)
    by_job = [u for u in updates if u.event.job_id == first.job_id]
    assert len(by_job) == 1
    update = by_job[0].event.to_record()
    assert update["version"] == 1
    assert update["holdout_after"] > update["holdout_before"]
    assert json.loads(update["signature_json"]) == {
        "route": {"inputs": ["text"], "outputs": ["label"]}
    }
    assert json.loads(update["program_state_json"])["route"]["demos"], "published without demos"

    job = await jobs.get(db_pool, first.job_id)
    assert job is not None
    assert job.status == "succeeded"
    assert job.program_version == 1
    assert job.lm_calls
    assert job.lm_calls > 0
    assert job.wall_s
    assert job.cpu_s is not None
    assert job.details["split"] == {"train": 36, "val": 12, "holdout": 12}
    # the code's program served every stored ticket: its holdout score came from those answers
    assert job.details["current_served"] == 12
    # per-class confusion before and after: which labels the new version learned
    before, after = job.details["confusion"]["before"], job.details["confusion"]["after"]
    assert sum(sum(row.values()) for row in before.values()) == 12
    assert sum(sum(row.values()) for row in after.values()) == 12
    per_class = job.details["per_class"]
    assert set(per_class) == set(after)
    assert all(c["recall_after"] >= c["recall_before"] for c in per_class.values())
    assert any(c["recall_after"] > c["recall_before"] for c in per_class.values())
    version = await programs.get_version(db_pool, worker, 1)
    assert version is not None
    assert version.job_id == first.job_id
    assert job.snapshot_id is not None
    assert version.snapshot_id == job.snapshot_id  # lineage: version → dataset snapshot
    snapshot = await get_snapshot(db_pool, job.snapshot_id)
    assert snapshot is not None
    assert len(snapshot.example_ids) == 60
    assert snapshot.purpose == f"optimization {first.job_id}"
    assert version.holdout_after == update["holdout_after"]
    assert version.size_bytes == len(update["program_state_json"].encode())
    # the sentinel compared against version 1 (already perfect): rejected, nothing new
    sentinel_job = await jobs.get(db_pool, sentinel.job_id)
    assert sentinel_job is not None
    assert sentinel_job.status == "rejected"
    assert sentinel_job.details["current_source"] == "version 1"
    assert sentinel_job.details["current_served"] == 0  # version 1 served none of them
    assert [v.version for v in await programs.list_versions(db_pool, worker)] == [1]


async def test_candidate_not_better_is_rejected(
    kafka_settings: KafkaSettings,
    producer: AIOKafkaProducer,
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    group_id: str,
    unique: str,
) -> None:
    # both programs asked on the oblivious LM: the stored answers ("unknown") are not what it
    # says, so scoring the current program from them would not compare like with like
    settings = optimizer_settings(
        topics, db_schema, group_id, lm_ref=OBLIVIOUS_LM, reuse_served=False
    )
    worker = f"router-{unique}"
    req = request(worker)
    await store_tickets(db_pool, worker, 60)
    async with (
        JobWatch(kafka_settings, topics.optimization_status, topics.program_updated) as watch,
        running_optimizer(settings, dataset(db_pool)),
    ):
        final = await watch.run(producer, topics, req)
    assert final.event.status == "rejected"
    details = json.loads(final.event.details_json)
    assert details["holdout_before"] == details["holdout_after"]
    assert "not better" in final.event.message
    assert watch.of("ProgramUpdated", worker_id=worker) == []
    assert await programs.latest(db_pool, worker) is None
    job = await jobs.get(db_pool, req.job_id)
    assert job is not None
    assert job.status == "rejected"
    assert job.program_version is None


async def test_only_labeled_rows_lend_their_served_answers(
    db_pool: asyncpg.Pool, unique: str
) -> None:
    """A row no feedback labeled stands in its served answer for the label; scoring the current
    program from that answer would always score, so the gate re-asks such rows."""
    labeled, unlabeled = f"router-{unique}-l", f"router-{unique}-u"
    await store_labeled(db_pool, labeled, fake_task.tickets(3, 0))
    await store_labeled(db_pool, unlabeled, fake_task.tickets(3, 1), has_label=False)
    source = dataset(db_pool)
    with_label = await source.load(labeled, limit=None, labeled_only=False)
    without = await source.load(unlabeled, limit=None, labeled_only=False)
    assert [r.has_label for r in with_label] == [True] * 3
    assert [r.has_label for r in without] == [False] * 3
    assert all(r.label == r.outputs for r in without)  # the stand-in the store gives
    assert all(answer is not None for answer in served_answers(with_label, ["label"], None))
    assert served_answers(without, ["label"], None) == [None] * 3


async def test_small_dataset_is_refused_with_reason(
    kafka_settings: KafkaSettings,
    producer: AIOKafkaProducer,
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    group_id: str,
    unique: str,
) -> None:
    settings = optimizer_settings(topics, db_schema, group_id, min_examples=30, dataset_wait_s=1.0)
    req = request(f"router-{unique}")
    await store_tickets(db_pool, req.worker_id, 12)
    async with (
        JobWatch(kafka_settings, topics.optimization_status) as watch,
        running_optimizer(settings, dataset(db_pool)),
    ):
        final = await watch.run(producer, topics, req)
    assert final.event.status == "failed"
    assert final.event.message == (
        "refused: dataset too small: 12 usable examples, at least 30 needed"
    )
