"""The whole loop on the embedded offline LM (SmolLM2-135M: small enough for CI).

The small model is too weak to promise a gain (the 1.5B model's gain is measured by
``flywheel demo`` and ``tests/bench/quality.py``); this test proves the real engine drives every
step: labeled traffic → trigger → optimizer compiles on the real LM in a child process → holdout
gate → a defined end state, and when a program ships the worker hot-reloads it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import dspy
import pytest

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.demo.traffic import ticket_stream
from dspy_flywheel.lm import LMSettings, build_lm, engine_stats
from dspy_flywheel.sdk import WorkerSettings
from dspy_flywheel.settings import KafkaSettings
from tests.e2e.harness import running_loop, serve_labeled, service_env
from tests.e2e.loop_worker import RealRouter

MAX_TOKENS = "48"  # a label needs a few tokens; caps a confused small model's rambling

pytestmark = [pytest.mark.realllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def small_lm() -> dspy.LM:
    settings = LMSettings(model="smollm2", max_tokens=int(MAX_TOKENS))
    if not settings.model_path().exists():
        pytest.fail(
            f"{settings.model_path()} is missing: run ops/model.sh fetch --small", pytrace=False
        )
    return build_lm(settings)


async def test_loop_runs_on_the_embedded_lm(
    small_lm: dspy.LM,
    kafka_settings: KafkaSettings,
    topics: Topics,
    db_schema: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLYWHEEL_LM_MODEL", "smollm2")
    env = service_env(
        topics,
        db_schema,
        kafka_settings,
        FLYWHEEL_LM_MODEL="smollm2",
        FLYWHEEL_LM_THREADS="2",
        FLYWHEEL_LM_MAX_TOKENS=MAX_TOKENS,
        FLYWHEEL_OPTIMIZER_MIN_EXAMPLES="8",
        # CI-sized: this test proves the real LM drives a compile and an evaluation; the
        # gate's minimum holdout (30) and its statistics are tested in test_optimizer_gate.py
        FLYWHEEL_OPTIMIZER_MIN_HOLDOUT="1",
        FLYWHEEL_OPTIMIZER_ROLLOUT="immediate",  # no canary: a shipped version serves at once
        FLYWHEEL_OPTIMIZER_WALL_TIME_S="600",
    )
    settings = WorkerSettings(topic_prefix=topics.prefix, spool_dir=tmp_path / "spool")
    traffic = iter([({"ticket": e.ticket}, e.label) for e in ticket_stream(seed=11)])
    calls_before = engine_stats(small_lm).calls
    with dspy.context(lm=small_lm):
        worker = RealRouter.create(settings=settings)
        try:
            async with running_loop(
                env, tmp_path / "logs", kafka_settings, topics, worker.worker_id
            ) as loop:
                served = 0
                while loop.lifecycle.request is None and served < 40:
                    loop.check_alive()
                    await asyncio.to_thread(serve_labeled, worker, [next(traffic)], "label")
                    served += 1
                await loop.until(lambda: loop.lifecycle.request is not None, 30, "the request")
                request = loop.lifecycle.request
                assert request is not None
                assert request.reason == "performance"
                assert json.loads(request.evidence_json)["accuracy"] < 0.75

                await loop.until(
                    lambda: loop.lifecycle.status in ("succeeded", "rejected"),
                    900,
                    "the job to end succeeded or rejected",
                )
                details = loop.lifecycle.details
                print(
                    f"\nreal-LM loop: served={served} job={loop.lifecycle.status} "
                    f"message={loop.lifecycle.message!r} details={details}"
                )
                if loop.lifecycle.status == "succeeded":
                    await loop.until(
                        lambda: loop.lifecycle.serving_version is not None, 60, "the reload ack"
                    )
                    assert worker.version == loop.lifecycle.serving_version
                    pred = await asyncio.to_thread(worker, ticket="I was charged twice")
                    assert pred.execution_id
        finally:
            worker.close(timeout=5)
    assert engine_stats(small_lm).calls - calls_before >= served
