"""Worker events on the real broker: executions, feedback, trigger config registration."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeAlias

import dspy
import pytest

from dspy_flywheel.contracts.events import TriggerConfig
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.lm import make_lm
from dspy_flywheel.sdk import WorkerSettings, dspy_worker, dspy_worker_optimized
from dspy_flywheel.settings import KafkaSettings
from tests.fixtures.fake_lm import FakeEngine
from tests.integration.helpers import publish_event, read_events, until


class Classify(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("text -> label")

    def forward(self, text: str) -> dspy.Prediction:
        if text.startswith("fail"):
            raise ValueError(f"cannot classify {text}")
        return self.predict(text=text)


def label_metric(example: Any, prediction: Any, trace: Any = None) -> float:
    return float(example.label == prediction.label)


ClassifyWorker = dspy_worker("classifier")(Classify)
OptimizedClassify = dspy_worker_optimized(
    "classifier",
    optimizer="BootstrapFewShot",
    optimization_trigger="performance",
    metric=label_metric,
    threshold=0.7,
    max_bootstrapped_demos=2,
)(Classify)


@pytest.fixture
def engine() -> FakeEngine:
    engine = FakeEngine(lambda m: {"label": "billing" if "bill" in m[-1]["content"] else "tech"})
    dspy.configure(lm=make_lm(engine))
    return engine


Start: TypeAlias = Callable[..., Any]


@pytest.fixture
def start(kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path) -> Iterator[Start]:
    """``start(spec, spool="", **settings)``: a worker of ``spec`` on this test's topics, its
    spool in ``tmp_path / spool``; each is closed after the test."""
    workers: list[Any] = []

    def start_worker(spec: Any = ClassifyWorker, spool: str = "", **kw: Any) -> Any:
        settings = WorkerSettings(
            kafka=kafka_settings, topic_prefix=topics.prefix, spool_dir=tmp_path / spool, **kw
        )
        workers.append(worker := spec.create(settings=settings))
        return worker

    yield start_worker
    for worker in workers:
        worker.close(5)


async def test_1000_calls_give_exactly_1000_events_with_their_fields(
    engine: FakeEngine,
    kafka_settings: KafkaSettings,
    topics: Topics,
    start: Start,
) -> None:
    worker = start(reload=False)
    expected: dict[str, dict[str, Any]] = {}
    for i in range(1000):
        text = f"fail {i}" if i % 100 == 99 else f"bill {i}" if i % 2 else f"crash {i}"
        try:
            pred = worker(text=text)
            expected[pred.execution_id] = {"text": text, "label": pred.label}
        except ValueError:
            expected[worker.last_execution_id or ""] = {"text": text, "label": None}
    assert len(expected) == 1000

    events = await read_events(kafka_settings, topics.executions, count=1000, within_s=60)
    assert len(events) == 1000
    assert len({e.event_id for e in events}) == 1000
    for event in events:
        r = event.event.to_record()
        assert event.event_type == "ExecutionRecorded"
        assert event.event_id == r["execution_id"]
        assert event.traceparent
        assert event.traceparent.startswith("00-")
        want = expected.pop(r["execution_id"])
        assert r["worker_id"] == "classifier"
        assert r["worker_type"] == "classifier"
        assert json.loads(r["inputs_json"]) == {"text": want["text"]}
        assert r["program_version"] is None
        assert r["latency_ms"] > 0
        if want["label"] is None:
            assert r["success"] is False
            assert r["outputs_json"] is None
            assert r["error"].startswith("ValueError: cannot classify")
            assert r["lm_calls"] == 0
        else:
            assert r["success"] is True
            assert r["error"] is None
            assert json.loads(r["outputs_json"]) == {"label": want["label"]}
            assert r["lm_calls"] == 1
            assert r["prompt_tokens"] > 0
            assert r["completion_tokens"] > 0
    assert expected == {}
    stats = worker.stats()
    assert stats["overflow_dropped"] == 0
    assert stats["enqueued"] == 1000


async def test_feedback_events(
    engine: FakeEngine,
    kafka_settings: KafkaSettings,
    topics: Topics,
    start: Start,
) -> None:
    worker = start(reload=False)
    pred = worker(text="bill me")
    worker.feedback(pred.execution_id, label="billing")
    worker.feedback(pred.execution_id, label={"label": "tech"}, source="reviewer")
    events = await read_events(kafka_settings, topics.feedback, count=2, within_s=30)
    assert [(json.loads(e.event.label), e.event.score, e.event.source) for e in events] == [
        ({"label": "billing"}, 1.0, "user"),
        ({"label": "tech"}, 0.0, "reviewer"),
    ]
    assert {e.event.execution_id for e in events} == {pred.execution_id}


async def test_optimized_worker_registers_its_trigger_config(
    engine: FakeEngine,
    kafka_settings: KafkaSettings,
    topics: Topics,
    start: Start,
) -> None:
    worker = start(OptimizedClassify, "a")
    await until(lambda: worker.stats()["trigger_config_registered"], "registration", 30)
    (config,) = await read_events(kafka_settings, topics.trigger_config, count=1, within_s=30)
    r = config.event.to_record()
    assert r["worker_id"] == "classifier"
    assert r["policy"] == "performance"
    assert r["threshold"] == 0.7
    assert r["optimizer"] == "BootstrapFewShot"
    # called as a function, the decorator leaves the class under its name: the class is the ref
    assert r["program_ref"] == f"{__name__}:Classify"
    assert r["metric_ref"] == f"{__name__}:label_metric"
    worker.close(5)

    # An operator tunes it; a restarted worker keeps the operator's thresholds.
    await publish_event(
        kafka_settings,
        topics.trigger_config,
        "classifier",
        TriggerConfig.from_record(dict(r, threshold=0.95, window_size=10, updated_by="operator")),
    )
    again = start(OptimizedClassify, "b")
    await until(lambda: again.stats()["trigger_config_registered"], "registration", 30)
    again.close(5)
    configs = await read_events(kafka_settings, topics.trigger_config, count=2, within_s=10)
    assert len(configs) == 2  # nothing re-published: the code-owned fields were already current
    assert configs[-1].event.threshold == 0.95


async def test_auto_collect_off_is_marked_on_execution_events(
    engine: FakeEngine,
    kafka_settings: KafkaSettings,
    topics: Topics,
    start: Start,
) -> None:
    spec = dspy_worker_optimized("classifier", auto_collect_training=False)(Classify)
    worker = start(spec, reload=False)
    worker(text="bill")
    (event,) = await read_events(kafka_settings, topics.executions, count=1, within_s=30)
    assert event.headers.get("auto_collect") == b"false"
