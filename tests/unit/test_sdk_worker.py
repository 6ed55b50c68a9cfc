"""Worker call paths, events, feedback and tracing, without Kafka (events are captured)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import dspy
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dspy_flywheel.contracts.codec import decode, encode
from dspy_flywheel.contracts.events import ExecutionRecorded
from dspy_flywheel.lm import make_lm
from dspy_flywheel.sdk import SPAN_NAME, Worker, WorkerSettings, dspy_worker
from dspy_flywheel.sdk.emitter import ExecutionRoute, Pending, execution_pending
from dspy_flywheel.sdk.events import ExecutionRow
from dspy_flywheel.sdk.tracing import resolve_traceparent
from tests.fixtures.fake_lm import FakeEngine


class CaptureEmitter:
    """Stands in for the emitter: keeps what the call path submits."""

    def __init__(self) -> None:
        self.items: list[Pending] = []
        self.route: ExecutionRoute | None = None

    def route_executions(self, route: ExecutionRoute) -> None:
        self.route = route

    def submit_execution(self, row: ExecutionRow) -> None:
        assert self.route is not None
        self.items.append(execution_pending(self.route, row))

    def submit(self, item: Pending) -> None:
        self.items.append(item)

    def records(self, event_type: str) -> list[dict[str, Any]]:
        events = [i.build(i.payload) if i.build else i.payload for i in self.items]
        return [e.to_record() for e in events if e.event_type == event_type]


class Classify(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("text -> label")

    def forward(self, text: str) -> dspy.Prediction:
        if text == "boom":
            raise RuntimeError("model exploded")
        return self.predict(text=text)


ClassifyWorker = dspy_worker("classifier")(Classify)


def contains_billing(example: Any, prediction: Any, trace: Any = None) -> float:
    return float("bill" in prediction.label)


@pytest.fixture
def engine() -> FakeEngine:
    engine = FakeEngine(lambda _m: {"label": "billing"})
    dspy.configure(lm=make_lm(engine))
    return engine


def offline_worker(spec: Any = ClassifyWorker, **kw: Any) -> tuple[Worker, CaptureEmitter]:
    worker = spec.create(settings=WorkerSettings(emit=False, reload=False), **kw)
    capture = CaptureEmitter()
    worker._attach(capture)  # type: ignore[arg-type]  # duck-typed test double
    return worker, capture


def test_call_returns_the_prediction_with_its_execution_id(engine: FakeEngine) -> None:
    worker, capture = offline_worker()
    pred = worker(text="I was charged twice")
    assert pred.label == "billing"
    assert list(pred.keys()) == ["label"]  # execution_id is not an output field
    assert worker.last_execution_id == pred.execution_id
    (record,) = capture.records("ExecutionRecorded")
    assert record["execution_id"] == pred.execution_id
    assert capture.items[0].event_id == pred.execution_id  # one event per execution
    assert record["worker_id"] == "classifier"
    assert record["worker_type"] == "classifier"
    assert json.loads(record["inputs_json"]) == {"text": "I was charged twice"}
    assert json.loads(record["outputs_json"]) == {"label": "billing"}
    assert record["success"] is True
    assert record["error"] is None
    assert record["program_version"] is None
    assert record["latency_ms"] > 0
    assert record["lm_calls"] == 1
    used = engine.counters.snapshot()  # the call's tokens, each in its own field
    assert used.prompt_tokens != used.completion_tokens
    assert (record["prompt_tokens"], record["completion_tokens"]) == (
        used.prompt_tokens,
        used.completion_tokens,
    )
    assert abs(record["timestamp_ms"] - time.time() * 1000) < 60_000
    decoded = decode(encode(ExecutionRecorded.from_record(record)).value)
    assert decoded.event.to_record() == record  # fits the schema


async def test_acall_records_the_same(engine: FakeEngine) -> None:
    worker, capture = offline_worker()
    pred = await worker.acall(text="refund")
    assert pred.label == "billing"
    assert worker.last_execution_id == pred.execution_id
    (record,) = capture.records("ExecutionRecorded")
    assert record["lm_calls"] == 1
    assert record["success"] is True
    await worker.aclose()


def test_failed_call_raises_and_is_recorded(engine: FakeEngine) -> None:
    worker, capture = offline_worker()
    with pytest.raises(RuntimeError, match="exploded"):
        worker(text="boom")
    (record,) = capture.records("ExecutionRecorded")
    assert record["success"] is False
    assert record["error"] == "RuntimeError: model exploded"
    assert record["outputs_json"] is None
    assert worker.last_execution_id == record["execution_id"]
    assert worker.failures == 1


def test_usage_counts_each_lm_call_of_this_call_only(engine: FakeEngine) -> None:
    class TwoSteps(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = dspy.Predict("text -> label")
            self.second = dspy.Predict("text, draft -> label")

        def forward(self, text: str) -> dspy.Prediction:
            first = self.first(text=text)
            return self.second(text=text, draft=first.label)

    worker, capture = offline_worker(dspy_worker("two-steps")(TwoSteps))
    worker(text="a")
    worker(text="b")
    records = capture.records("ExecutionRecorded")
    assert [r["lm_calls"] for r in records] == [2, 2]
    assert engine.counters.snapshot().calls == 4


def test_a_worker_called_inside_another_counts_its_own_lm_calls(engine: FakeEngine) -> None:
    inner, capture = offline_worker()

    class Outer(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("text -> label")

        def forward(self, text: str) -> dspy.Prediction:
            inner(text=text)
            return self.predict(text=text)

    outer, outer_capture = offline_worker(dspy_worker("outer")(Outer))
    outer(text="a")
    outer(text="b")
    assert [r["lm_calls"] for r in capture.records("ExecutionRecorded")] == [1, 1]
    # the outer call's LM calls include the inner worker's, as with dspy.track_usage
    assert [r["lm_calls"] for r in outer_capture.records("ExecutionRecorded")] == [2, 2]


async def test_interleaved_async_calls_on_one_thread_count_separately(engine: FakeEngine) -> None:
    class TwoSteps(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("text -> label")

        def forward(self, text: str) -> dspy.Prediction:
            self.predict(text=text)
            return self.predict(text=text + "!")

    worker, capture = offline_worker(dspy_worker("async-two-steps")(TwoSteps))
    await asyncio.gather(*(worker.acall(text=f"t{i}") for i in range(4)))
    await worker.acall(text="after")
    assert [r["lm_calls"] for r in capture.records("ExecutionRecorded")] == [2, 2, 2, 2, 2]


def test_lm_calls_on_dspy_parallel_threads_count_too(engine: FakeEngine) -> None:
    class Fanout(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("text -> label")

        def forward(self, text: str) -> dspy.Prediction:
            runs = [(self.predict, {"text": f"{text} {i}"}) for i in range(3)]
            results = dspy.Parallel(num_threads=3, disable_progress_bar=True)(runs)
            return results[0]

    worker, capture = offline_worker(dspy_worker("fanout")(Fanout))
    worker(text="a")
    (record,) = capture.records("ExecutionRecorded")
    assert record["lm_calls"] == 3


def test_a_tracker_the_caller_had_still_sees_usage(engine: FakeEngine) -> None:
    worker, _ = offline_worker()
    with dspy.track_usage() as tracker:
        worker(text="x")
    assert sum(len(v) for v in tracker.usage_data.values()) == 1


def test_feedback_scores_the_remembered_outputs(engine: FakeEngine) -> None:
    worker, capture = offline_worker()
    pred = worker(text="charged twice")
    assert worker.feedback(pred.execution_id, label="Billing.") == 1.0  # normalized match
    assert worker.feedback(pred.execution_id, label={"label": "tech"}) == 0.0
    assert worker.feedback(pred.execution_id, score=0.5, source="reviewer") == 0.5
    records = capture.records("FeedbackRecorded")
    assert [json.loads(r["label"]) if r["label"] else None for r in records] == [
        {"label": "Billing."},
        {"label": "tech"},
        None,
    ]
    assert [r["score"] for r in records] == [1.0, 0.0, 0.5]
    assert records[2]["source"] == "reviewer"
    assert all(r["execution_id"] == pred.execution_id for r in records)


def test_feedback_uses_the_worker_metric(engine: FakeEngine) -> None:
    spec = dspy_worker("classifier", metric=contains_billing)(Classify)
    worker, _ = offline_worker(spec)
    pred = worker(text="x")
    assert worker.feedback(pred.execution_id, label="anything") == 1.0


def test_feedback_for_an_unknown_execution_sends_the_label_unscored(engine: FakeEngine) -> None:
    worker, capture = offline_worker()
    assert worker.feedback("01900000-0000-7000-8000-000000000000", label="billing") is None
    (record,) = capture.records("FeedbackRecorded")
    assert json.loads(record["label"]) == {"label": "billing"}  # from the signature's outputs


def test_feedback_rejects_bad_arguments(engine: FakeEngine) -> None:
    worker, _ = offline_worker()
    with pytest.raises(ValueError, match="label, a score"):
        worker.feedback("x")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        worker.feedback("x", score=1.5)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    from dspy_flywheel.sdk import tracing

    original = tracing.tracer
    tracing.tracer = tracer
    tracing._SdkState.checked_at = float("-inf")  # look again
    try:
        yield exporter
    finally:
        tracing.tracer = original
        tracing._SdkState.checked_at = float("-inf")  # look again


def test_one_span_per_call_and_its_traceparent_in_the_event(
    engine: FakeEngine, spans: InMemorySpanExporter
) -> None:
    worker, capture = offline_worker()
    pred = worker(text="x")
    (span,) = spans.get_finished_spans()
    assert span.name == SPAN_NAME
    assert span.attributes is not None
    assert span.attributes["flywheel.execution_id"] == pred.execution_id
    traceparent = resolve_traceparent(capture.items[0].trace)
    ctx = span.context
    assert traceparent == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def test_without_an_sdk_events_join_the_callers_trace(engine: FakeEngine) -> None:
    assert not trace.get_current_span().get_span_context().is_valid
    worker, capture = offline_worker()
    worker(text="x")
    first = resolve_traceparent(capture.items[0].trace)
    # No SDK: the call's span is non-recording and the emitter starts a trace for the event
    # later (None here). Another test may have installed an SDK provider process-wide; then the
    # call has its own new trace. Either way it is not a caller's trace.
    assert first is None or not first.startswith(f"00-{0xABC:032x}")
    caller = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=0xABC,
            span_id=0xDEF,
            is_remote=True,
            trace_flags=trace.TraceFlags(1),
        )
    )
    with trace.use_span(caller):
        worker(text="y")
    traceparent = resolve_traceparent(capture.items[1].trace)
    assert traceparent is not None
    assert traceparent.startswith(f"00-{0xABC:032x}-")
    assert traceparent.endswith("-01")


def test_emitted_events_always_get_a_traceparent() -> None:
    from dspy_flywheel.sdk.tracing import new_traceparent

    first, second = new_traceparent(), new_traceparent()
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", first)
    assert first.split("-")[1] != second.split("-")[1]


def test_function_worker_gets_the_predictor_and_its_docstring(engine: FakeEngine) -> None:
    @dspy_worker("router", signature="text -> label")
    def route(predict: dspy.Predict, text: str) -> dspy.Prediction:
        """Route a support ticket to billing, tech or other."""
        return predict(text=text.upper())

    worker, _capture = offline_worker(route)
    assert worker(text="hi").label == "billing"
    assert "Route a support ticket" in engine.requests[-1][0]["content"]
    assert "HI" in engine.requests[-1][-1]["content"]
    assert worker.signature == {"predict": {"inputs": ["text"], "outputs": ["label"]}}


async def test_async_function_worker(engine: FakeEngine) -> None:
    @dspy_worker("router", signature="text -> label")
    async def route(predict: dspy.Predict, text: str) -> dict[str, str]:
        pred = await predict.acall(text=text)
        return {"label": pred.label + "!"}

    worker, capture = offline_worker(route)
    pred = await worker.acall(text="hi")
    assert pred.label == "billing!"
    assert pred.execution_id == capture.records("ExecutionRecorded")[0]["execution_id"]
