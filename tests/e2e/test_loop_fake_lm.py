"""The whole loop on the real broker and database with a fake, demo-aware LM.

traffic with labels → collector stores examples → trigger sees accuracy < threshold →
optimizer compiles + gates on the holdout → program-updated → worker hot-reloads (ack) →
accuracy on new traffic rises by ≥ 20 points.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import dspy
import pytest

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.sdk import WorkerSettings
from dspy_flywheel.settings import KafkaSettings
from tests.e2e.harness import FINAL, Loop, running_loop, serve_labeled, service_env
from tests.e2e.loop_worker import WORKERS
from tests.fixtures.fake_task import make_lm, tickets


@pytest.mark.parametrize(
    "optimizer",
    [
        "BootstrapFewShot",
        pytest.param("BootstrapFewShotWithRandomSearch", marks=pytest.mark.slow),
        pytest.param("MIPROv2", marks=pytest.mark.slow),
    ],
)
async def test_loop_improves_accuracy(
    optimizer: str, kafka_settings: KafkaSettings, topics: Topics, db_schema: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    env = service_env(
        topics,
        db_schema,
        kafka_settings,
        FLYWHEEL_OPTIMIZER_LM_REF="tests.fixtures.fake_task:make_lm",
    )
    spec = WORKERS[optimizer]
    settings = WorkerSettings(topic_prefix=topics.prefix, spool_dir=tmp_path / "spool")
    traffic = iter([(t["inputs"], t["outputs"]["label"]) for t in tickets(600, seed=3)])
    with dspy.context(lm=make_lm()):
        worker = spec.create(settings=settings)
        try:
            async with running_loop(
                env, tmp_path / "logs", kafka_settings, topics, worker.worker_id
            ) as loop:
                before: list[float] = []
                while loop.lifecycle.request is None and len(before) < 80:
                    loop.check_alive()
                    before.append(
                        await asyncio.to_thread(serve_labeled, worker, [next(traffic)], "label")
                    )
                    await asyncio.sleep(0.05)
                await loop.until(lambda: loop.lifecycle.request is not None, 30, "the request")
                # the job waits until enough labeled examples are stored for the gate's holdout
                # (30 of ~150); labeled traffic goes on meanwhile, as it would in production
                while not _snapshot_taken(loop) and len(before) < 400:
                    loop.check_alive()
                    before.append(
                        await asyncio.to_thread(serve_labeled, worker, [next(traffic)], "label")
                    )
                    await asyncio.sleep(0.01)
                request = loop.lifecycle.request
                assert request is not None
                assert request["reason"] == "performance"
                assert request["optimizer"] == optimizer
                assert json.loads(request["evidence_json"])["accuracy"] < 0.5

                await loop.until(lambda: loop.lifecycle.status in FINAL, 240, "the job's end")
                assert loop.lifecycle.status == "succeeded", loop.lifecycle.message
                await loop.until(lambda: loop.lifecycle.published is not None, 30, "publish")
                published = loop.lifecycle.published
                assert published is not None
                assert published["holdout_after"] > published["holdout_before"]
                await loop.until(lambda: loop.lifecycle.serving_version is not None, 30, "ack")
                assert worker.version == published["version"]
                assert loop.lifecycle.trace_id is not None

                after = await asyncio.to_thread(
                    serve_labeled, worker, [next(traffic) for _ in range(40)], "label"
                )
        finally:
            worker.close(timeout=5)
    accuracy_before = sum(before) / len(before)
    print(
        f"\n{optimizer}: accuracy {accuracy_before:.2f} -> {after:.2f} "
        f"in {time.monotonic() - started:.1f}s"
    )
    assert after - accuracy_before >= 0.20, (accuracy_before, after)
    assert time.monotonic() - started < 300


def _snapshot_taken(loop: Loop) -> bool:
    return "split" in loop.lifecycle.details or loop.lifecycle.status in FINAL
