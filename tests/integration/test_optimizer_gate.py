"""The holdout gate on the real optimizer service: paired evidence decides, in words.

The fake LM (``paired_lm``) makes the optimized candidate right exactly on the holdout tickets
the test chooses, so the paired counts are known in advance.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.dashboard import dashboard_routes
from dspy_flywheel.optimizer.dataset import split
from dspy_flywheel.optimizer.settings import OptimizerSettings
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.store import jobs, programs
from tests.fixtures.paired_lm import ticket_number
from tests.integration.optimizer_support import (
    dataset,
    optimizer_settings,
    request,
    run_job,
    store_tickets,
)

pytestmark = pytest.mark.timeout(240)
PAIRED_LM = "tests.fixtures.paired_lm:paired_lm"


async def _holdout(pool: asyncpg.Pool, worker: str, settings: OptimizerSettings) -> list[int]:
    """The ticket numbers the job will hold out (same loader, split function and seed)."""
    rows = await dataset(pool).load(worker, limit=settings.max_examples, labeled_only=True)
    parts = split(
        rows,
        seed=settings.split_seed,
        min_examples=settings.min_examples,
        train_fraction=settings.train_fraction,
        val_fraction=settings.val_fraction,
    )
    return [ticket_number(r.inputs["text"]) for r in parts.holdout]


def _settings(topics: Topics, schema: str, group_id: str, **values: Any) -> OptimizerSettings:
    # the paired LM plays both programs, so both are asked: the stored answers are not its own
    return optimizer_settings(
        topics, schema, group_id, lm_ref=PAIRED_LM, reuse_served=False, **values
    )


async def test_one_better_of_eight_is_not_published(
    kafka_settings: KafkaSettings,
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    group_id: str,
    unique: str,
) -> None:
    worker = f"gate8-{unique}"
    await store_tickets(db_pool, worker, 40)  # 24 train, 8 validation, 8 holdout
    # the default minimum holdout: refused before compiling, with what it needs
    strict = _settings(topics, db_schema, group_id, min_holdout=30, dataset_wait_s=1.0)
    final, watch = await run_job(kafka_settings, topics, db_pool, strict, request(worker))
    assert final.event.status == "rejected"
    message = final.event.message
    assert "the holdout has 8 example(s), below the minimum of 30" in message
    assert "needs more labeled data (about 150 labeled examples" in message
    details = json.loads(final.event.details_json)
    assert details["gate"]["n"] == 8
    assert "holdout_before" not in details  # nothing was compiled or evaluated

    # allowed to evaluate on 8: the candidate wins 1, loses 0 -- not evidence
    holdout = await _holdout(db_pool, worker, strict)
    assert len(holdout) == 8
    won = {"FLYWHEEL_TEST_WON": str(holdout[0])}
    small = _settings(topics, db_schema, f"{group_id}-2", min_holdout=8, child_env=won)
    final, watch = await run_job(kafka_settings, topics, db_pool, small, request(worker))
    assert final.event.status == "rejected", final.event.message
    message = final.event.message
    assert "not better than the current program" in message
    assert "1 example(s) only the candidate got right, 0 only the current program got right" in (
        message
    )
    gate = json.loads(final.event.details_json)["gate"]
    assert (gate["n"], gate["b"], gate["c"]) == (8, 1, 0)
    assert gate["gain"] == pytest.approx(0.125)
    assert gate["p_value"] == 0.5
    assert gate["interval"][0] < 0 < gate["interval"][1]
    assert watch.of("ProgramUpdated", worker_id=worker) == []
    assert await programs.latest(db_pool, worker) is None


async def test_twenty_points_better_on_a_hundred_is_published_with_interval(
    kafka_settings: KafkaSettings,
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    group_id: str,
    unique: str,
) -> None:
    worker = f"gate100-{unique}"
    await store_tickets(db_pool, worker, 125)
    probe = _settings(topics, db_schema, group_id, train_fraction=0.2, val_fraction=0.0)
    holdout = await _holdout(db_pool, worker, probe)
    assert len(holdout) == 100
    env = {
        "FLYWHEEL_TEST_WON": ",".join(map(str, holdout[:25])),
        "FLYWHEEL_TEST_LOST": ",".join(map(str, holdout[25:30])),
    }
    settings = _settings(
        topics, db_schema, group_id, train_fraction=0.2, val_fraction=0.0, child_env=env
    )
    final, watch = await run_job(kafka_settings, topics, db_pool, settings, request(worker))
    assert final.event.status == "succeeded", final.event.message
    gate = json.loads(final.event.details_json)["gate"]
    assert (gate["n"], gate["b"], gate["c"]) == (100, 25, 5)
    assert gate["gain"] == pytest.approx(0.20)
    low, high = gate["interval"]
    assert 0.0 < low < 0.20 < high
    assert gate["p_value"] < 0.001
    interval_text = f"95% interval [{low * 100:+.1f} pts, {high * 100:+.1f} pts]"
    assert interval_text in final.event.message
    assert len(watch.of("ProgramUpdated", worker_id=worker)) == 1

    # registry row, job row, API listing and dashboard carry the same record
    version = await programs.latest(db_pool, worker)
    assert version is not None
    assert version.gate == gate
    job = await jobs.get(db_pool, final.event.job_id)
    assert job is not None
    assert job.details["gate"] == gate
    assert version.summary()["gate"]["interval"] == [low, high]
    app = Starlette(routes=dashboard_routes(lambda: db_pool))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        page = await c.get("/dashboard")
    assert f"+20.0 pts [{100 * low:+.1f}, {100 * high:+.1f}] 95%, n=100, won 25 / lost 5" in (
        page.text
    )
