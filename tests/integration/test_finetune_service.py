"""BootstrapFinetune through the real services on the small model (CI-sized).

request → optimizer job → compile child bootstraps traces on SmolLM2 and trains a LoRA adapter
(trainer child) → adapter stored by hash → holdout gate → version stored with the adapter →
``program-updated`` names it → a worker on the same base model loads it into a new engine, swaps,
acknowledges and serves a call through that engine; the job's status events carry the training
steps and the trace has the ``optimization.train`` span. Needs the training stack
(``.[finetune]``) and the small model.

CI-sized and honest: the gate keeps its defaults, 95 % confidence (one-sided 2.5 %: at least 6
discordant pairs, all won by the tuned student) and a holdout of at least 30 (50 labeled
examples: 20 to train on, 30 held out, no validation split: BootstrapFinetune does not use one).
The task is the built-in extraction task (message -> order_id): zero-shot SmolLM2 gets about
10 % right, its 4-demo teacher most of the 20 training examples, whose traces the student is
trained on (2 epochs of 2-example steps at lr 1e-3). On the classification task the teacher
got 3 of 24 right, 3 training examples were too few, and the gate (rightly) refused the student
(3 won, 0 lost on 16: p = 0.125).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import asyncpg
import dspy
import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.finetune import artifacts
from dspy_flywheel.finetune.artifacts import AdapterArtifact, adapter_sha, base_model_sha256
from dspy_flywheel.lm import ModelNotFoundError
from dspy_flywheel.lm.embedded import adapter_engine
from dspy_flywheel.sdk import WorkerSettings, dspy_worker
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.store import programs
from tests.fixtures.sdk_worker import wait_ready
from tests.fixtures.small_lm import SETTINGS, OrderExtractor, extraction_examples, make_lm
from tests.integration.helpers import (
    new_traceparent,
    read_events,
    span_exporter,
    spans_in_trace,
    until,
)
from tests.integration.optimizer_support import (
    ALLOWED_REFS,
    JobWatch,
    dataset,
    optimizer_settings,
    request,
    running_optimizer,
    store_labeled,
)

pytestmark = [pytest.mark.realllm, pytest.mark.slow, pytest.mark.timeout(900)]

PROGRAM_REF = "tests.fixtures.small_lm:OrderExtractor"
# train 20, holdout 30: the gate's default minimum (train_fraction 0.4, no validation split)
EXAMPLES = 50


def _span_id(span: ReadableSpan) -> int | None:
    return None if span.context is None else span.context.span_id


def _parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    return span_exporter()


@pytest.fixture(scope="module")
def small_lm() -> dspy.LM:
    missing = [
        n for n in ("torch", "transformers", "peft", "gguf") if not importlib.util.find_spec(n)
    ]
    if missing:
        pytest.skip(
            f"training stack not installed ({', '.join(missing)}): pip install -e '.[finetune]'"
        )
    try:
        SETTINGS.model_path()
    except ModelNotFoundError as exc:
        pytest.skip(f"small model not installed ({exc})")
    return make_lm()


async def test_finetune_job_publishes_an_adapter_the_worker_serves(
    small_lm: dspy.LM,
    kafka_settings: KafkaSettings,
    producer: AIOKafkaProducer,
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    group_id: str,
    unique: str,
    spans: InMemorySpanExporter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLYWHEEL_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    worker_id = f"ft-{unique}"
    settings = optimizer_settings(
        topics,
        db_schema,
        group_id,
        FLYWHEEL_OPTIMIZER_ALLOWED_REFS=f"{ALLOWED_REFS},{PROGRAM_REF}",
        lm_ref="tests.fixtures.small_lm:make_lm",
        min_examples=EXAMPLES,
        min_holdout=30,  # the default, which optimizer_settings lowers for its fake-LM jobs
        reuse_served=False,  # the stored answers are a fixture's, not SmolLM2's: ask it
        train_fraction=0.4,
        val_fraction=0.0,
        rollout="immediate",
        wall_time_s=720.0,
        memory_mb=None,  # the trainer child has its own RSS budget (train_kwargs memory_mb)
    )
    req = request(
        worker_id,
        optimizer="BootstrapFinetune",
        program_ref=PROGRAM_REF,
        params={"train_kwargs": {"epochs": 2, "batch_size": 2, "learning_rate": 1e-3}},
    )
    *examples, unseen = extraction_examples(EXAMPLES + 1)  # `unseen`: a call no job made
    assert await store_labeled(db_pool, worker_id, examples, worker_type="extractor") == EXAMPLES
    parent = new_traceparent()
    with dspy.context(lm=small_lm):
        worker = dspy_worker(worker_id)(OrderExtractor).create(
            settings=WorkerSettings(
                kafka=kafka_settings, topic_prefix=topics.prefix, spool_dir=tmp_path / "spool"
            )
        )
        try:
            assert wait_ready(worker, 30)
            async with (
                JobWatch(kafka_settings, topics.optimization_status, topics.program_updated) as w,
                running_optimizer(settings, dataset(db_pool)),
            ):
                final = await w.run(producer, topics, req, traceparent=parent, within_s=720)
                running = [
                    d.event
                    for d in w.of("OptimizationStatusChanged", job_id=req.job_id)
                    if d.event.status == "running"
                ]
                updates = w.of("ProgramUpdated", job_id=req.job_id)
            gate = json.loads(final.event.details_json or "{}").get("gate")
            print(f"job {final.event.status}: {final.event.message}; gate {gate}")
            assert final.event.status == "succeeded", final.event.message
            details = [json.loads(r.details_json or "{}") for r in running]
            assert any("train_loss" in d and d.get("train_step", 0) >= 1 for d in details)

            # the adapter is stored by content hash (fetch re-hashes it), trained on the base
            # model the worker serves, and the published version, row and event, names it
            (update,) = updates
            version = update.event.version
            artifact = AdapterArtifact.from_json(update.event.adapter_json)
            assert artifact.size > 0
            assert artifacts.fetch(artifact).stat().st_size == artifact.size
            assert artifact.base_sha256 == base_model_sha256(SETTINGS.model_path())
            assert artifact.loss_curve
            assert artifact.examples >= 1
            print(
                f"adapter {artifact.sha256[:12]}: {artifact.size} bytes, {artifact.examples} "
                f"examples, trained in {artifact.train_s:.0f} s, peak RSS {artifact.peak_rss_mb} MB"
            )
            stored = await programs.get_version(db_pool, worker_id, version)
            assert stored is not None
            assert stored.job_id == req.job_id
            assert stored.optimizer == "BootstrapFinetune"
            assert stored.adapter == json.loads(update.event.adapter_json)

            # the worker swaps it in, acknowledges it, and serves through the adapter's engine
            await until(lambda: worker.version == version, "the worker to serve it", 120)
            acks = [
                e.event
                for e in await read_events(
                    kafka_settings, topics.program_acks, count=1, within_s=60
                )
            ]
            assert any(a.version == version and a.status == "serving" for a in acks), acks
            (tuned,) = {id(p.lm): p.lm for _, p in worker.program.named_predictors()}.values()
            assert adapter_sha(str(tuned.model)) == artifact.sha256
            engine = adapter_engine(tuned.engine.config, str(tuned.model))
            assert engine.config.lora_path == str(artifacts.fetch(artifact))
            calls = engine.counters.snapshot().calls
            prediction = await asyncio.to_thread(worker, **unseen["inputs"])
            assert engine.counters.snapshot().calls == calls + 1
            print(
                f"served {prediction.order_id!r} (label {unseen['outputs']['order_id']!r}); "
                f"raw {tuned.history[-1].get('outputs') if tuned.history else None!r}"
            )
        finally:
            worker.close(timeout=5)  # flushes the worker's events
    executions = await read_events(kafka_settings, topics.executions, count=1, within_s=30)
    (served,) = [e.event for e in executions if e.event.execution_id == prediction.execution_id]
    assert served.success
    assert served.program_version == str(version)

    # one lifecycle trace: request -> optimization.job -> compile -> train, and publish
    by_name = {s.name: s for s in spans_in_trace(spans, parent)}
    job, compile_span, train = (
        by_name[n] for n in ("optimization.job", "optimization.compile", "optimization.train")
    )
    assert _parent_id(job) == int(parent.split("-")[2], 16)
    assert _parent_id(compile_span) == _span_id(job)
    assert _parent_id(train) == _span_id(compile_span)
    assert _parent_id(by_name["optimization.publish"]) == _span_id(job)
    assert train.attributes is not None
    assert train.attributes["flywheel.train.outcome"] == "done"
    assert int(train.attributes["flywheel.train.steps"]) >= 1
    assert train.attributes["flywheel.train.examples"] == artifact.examples
