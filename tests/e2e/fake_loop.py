"""One turn of the loop on the fake, demo-aware LM, shared by the plaintext and the secure e2e
tests: labeled traffic → collector → trigger request → job → program-updated (a candidate) →
the rollout service's canary on labeled traffic → promoted → reload ack → accuracy on new
traffic."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.rollout.config import RolloutPolicy
from dspy_flywheel.rollout.operator import write_policy
from dspy_flywheel.sdk import WorkerSettings
from dspy_flywheel.settings import KafkaSettings
from tests.e2e.harness import FINAL, Loop, running_loop, serve_labeled, service_env
from tests.e2e.loop_worker import WORKERS
from tests.fixtures.fake_task import make_lm, tickets


@dataclass
class Turn:
    optimizer: str
    accuracy_before: float
    accuracy_after: float
    seconds: float
    log_dir: Path


async def improve_once(
    optimizer: str,
    kafka: KafkaSettings,
    topics: Topics,
    db_schema: str,
    tmp_path: Path,
    *,
    connection: Mapping[str, str] | None = None,
    service_settings: Mapping[str, str] | None = None,
    while_serving: Callable[[Loop], Awaitable[None]] | None = None,
) -> Turn:
    """Run the loop once and check each step; ``while_serving`` runs after the reload ack,
    while the services still run. ``connection``: the services' KAFKA_* / DATABASE_*;
    ``service_settings``: more of their environment (e.g. the collector's engine)."""
    started = time.monotonic()
    env = service_env(
        topics,
        db_schema,
        kafka,
        connection,
        FLYWHEEL_OPTIMIZER_LM_REF="tests.fixtures.fake_task:make_lm",
        **(service_settings or {}),
    )
    spec = WORKERS[optimizer]
    settings = WorkerSettings(topic_prefix=topics.prefix, spool_dir=tmp_path / "spool", kafka=kafka)
    # the new version's canary: half the keys, 20 labels on each version at least
    policy = RolloutPolicy(worker_id=spec.worker_id, share=0.5, min_samples=20)
    await write_policy(kafka, topics.rollout_config, policy, spec.worker_id)
    traffic = iter([(t["inputs"], t["outputs"]["label"]) for t in tickets(600, seed=3)])
    with dspy.context(lm=make_lm()):
        worker = spec.create(settings=settings)
        try:
            async with running_loop(
                env, tmp_path / "logs", kafka, topics, worker.worker_id
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
                assert request.reason == "performance"
                assert request.optimizer == optimizer
                assert json.loads(request.evidence_json)["accuracy"] < 0.5

                await loop.until(lambda: loop.lifecycle.status in FINAL, 240, "the job's end")
                assert loop.lifecycle.status == "succeeded", loop.lifecycle.message
                await loop.until(lambda: loop.lifecycle.published is not None, 30, "publish")
                published = loop.lifecycle.published
                assert published is not None
                assert published.holdout_after > published.holdout_before
                canary = await _canary(loop, worker, traffic)
                print(f"\npromoted after {canary} canary calls")
                await loop.until(lambda: loop.lifecycle.serving_version is not None, 30, "ack")
                assert worker.version == published.version
                assert loop.lifecycle.trace_id is not None
                if while_serving is not None:
                    await while_serving(loop)

                after = await asyncio.to_thread(
                    serve_labeled, worker, [next(traffic) for _ in range(40)], "label"
                )
        finally:
            worker.close(timeout=5)
    return Turn(
        optimizer, sum(before) / len(before), after, time.monotonic() - started, tmp_path / "logs"
    )


async def _canary(loop: Loop, worker: Any, traffic: Iterator[tuple[dict[str, Any], str]]) -> int:
    """Labeled traffic on both versions until the rollout service promotes the candidate."""
    await loop.until(lambda: loop.lifecycle.decision("canary_started") is not None, 30, "canary")
    calls = 0
    while loop.lifecycle.decision("promoted", "rolled_back", "kept_current") is None:
        loop.check_alive()
        assert calls < 400, "no rollout decision after 400 labeled calls"
        await asyncio.to_thread(serve_labeled, worker, [next(traffic)], "label")
        calls += 1
        await asyncio.sleep(0.01)
    decided = loop.lifecycle.decision()
    assert decided is not None
    assert decided.decision == "promoted", decided.reason
    return calls


def _snapshot_taken(loop: Loop) -> bool:
    return "split" in loop.lifecycle.details or loop.lifecycle.status in FINAL
