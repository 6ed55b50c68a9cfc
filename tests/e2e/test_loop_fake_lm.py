"""The whole loop on the real broker and database with a fake, demo-aware LM.

traffic with labels → collector stores examples → trigger sees accuracy < threshold →
optimizer compiles + gates on the holdout → program-updated → worker hot-reloads (ack) →
accuracy on new traffic rises by ≥ 20 points.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path

import dspy
import pytest

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.demo.services import ServiceGroup
from dspy_flywheel.demo.watch import Lifecycle, follow
from dspy_flywheel.optimizer.fake_task import make_lm, tickets
from dspy_flywheel.sdk import WorkerSettings
from dspy_flywheel.settings import KafkaSettings
from tests.e2e.loop_worker import WORKERS

ROOT = Path(__file__).resolve().parents[2]
FINAL = ("succeeded", "rejected", "failed", "cancelled")


def _env(topics: Topics, schema: str, kafka: KafkaSettings) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "FLYWHEEL_TOPIC_PREFIX": topics.prefix,
        "FLYWHEEL_DB_SCHEMA": schema,
        "FLYWHEEL_ENCRYPTION_KEYS": "e2e:" + base64.b64encode(os.urandom(32)).decode(),
        "FLYWHEEL_ENCRYPTION_ACTIVE_KEY": "e2e",
        "FLYWHEEL_OPTIMIZER_LM_REF": "dspy_flywheel.optimizer.fake_task:make_lm",
        "FLYWHEEL_OPTIMIZER_MIN_EXAMPLES": "16",
        "FLYWHEEL_OPTIMIZER_GROUP_ID": f"opt-{topics.prefix}",
        "FLYWHEEL_COLLECTOR_GROUP_ID": f"col-{topics.prefix}",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


async def _until(predicate, timeout: float, what: str, check=None) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not predicate():
        if check:
            check()
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


def _accuracy(worker, items) -> float:  # type: ignore[no-untyped-def]
    correct = 0
    for item in items:
        pred = worker(**item["inputs"])
        worker.feedback(pred.execution_id, label=item["outputs"]["label"])
        correct += pred.label == item["outputs"]["label"]
    return correct / len(items)


@pytest.mark.parametrize("optimizer", [
    "BootstrapFewShot",
    pytest.param("BootstrapFewShotWithRandomSearch", marks=pytest.mark.slow),
    pytest.param("MIPROv2", marks=pytest.mark.slow),
])
async def test_loop_improves_accuracy(optimizer: str, kafka_settings: KafkaSettings,
                                      topics: Topics, db_schema: str, tmp_path: Path) -> None:
    started = time.monotonic()
    env = _env(topics, db_schema, kafka_settings)
    services = ServiceGroup(env, tmp_path / "logs")
    services.start()

    def alive() -> None:
        if dead := services.dead():
            logs = {n: (tmp_path / "logs" / f"{n}.log").read_text()[-3000:] for n in dead}
            pytest.fail(f"services exited: {dead}\n{json.dumps(logs, indent=1)}")

    _, spec = WORKERS[optimizer]
    settings = WorkerSettings(topic_prefix=topics.prefix, spool_dir=tmp_path / "spool")
    worker = None
    stop = asyncio.Event()
    try:
        with dspy.context(lm=make_lm()):
            worker = spec.create(settings=settings)
            lifecycle = Lifecycle(worker.worker_id)
            watcher = asyncio.create_task(follow(kafka_settings, topics, lifecycle, stop))
            stream = iter(tickets(400, seed=3))
            before: list[bool] = []
            while lifecycle.request is None and len(before) < 80:
                alive()
                item = next(stream)
                acc = await asyncio.to_thread(_accuracy, worker, [item])
                before.append(acc == 1.0)
                await asyncio.sleep(0.05)
            await _until(lambda: lifecycle.request is not None, 30, "the trigger's request", alive)
            request = lifecycle.request
            assert request is not None and request["reason"] == "performance"
            evidence = json.loads(request["evidence_json"])
            assert evidence["accuracy"] < 0.5 and request["optimizer"] == optimizer

            await _until(lambda: lifecycle.status in FINAL, 240, "the job to end", alive)
            assert lifecycle.status == "succeeded", lifecycle.message
            await _until(lambda: lifecycle.published is not None, 30, "program-updated")
            published = lifecycle.published
            assert published is not None
            assert published["holdout_after"] > published["holdout_before"]
            await _until(lambda: lifecycle.serving_version is not None, 30, "the reload ack")
            assert worker.version == published["version"]

            after = await asyncio.to_thread(_accuracy, worker, [next(stream) for _ in range(40)])
            accuracy_before = sum(before) / len(before)
            assert after - accuracy_before >= 0.20, (accuracy_before, after)
            assert lifecycle.trace_id is not None
        print(f"\n{optimizer}: accuracy {accuracy_before:.2f} -> {after:.2f}, "
              f"loop {time.monotonic() - started:.1f}s")
        assert time.monotonic() - started < 300
    finally:
        stop.set()
        if worker is not None:
            worker.close(timeout=5)
        services.stop()
