"""Shortcuts on the worker's call path give the same answers as the APIs they stand in for."""

from __future__ import annotations

import dspy
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from dspy_flywheel.sdk.events import outputs_of
from dspy_flywheel.sdk.feedback import RecentExecutions
from dspy_flywheel.sdk.tracing import INVALID_SPAN, current_context, origin_of, resolve_traceparent


def test_current_context_is_the_api_current_context() -> None:
    assert current_context() is otel_context.get_current()
    parent = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1))
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        assert current_context() is otel_context.get_current()
        traceparent = resolve_traceparent(origin_of(INVALID_SPAN))
        assert traceparent is not None
        assert traceparent.startswith(f"00-{0xABC:032x}-")
    finally:
        otel_context.detach(token)
    assert origin_of(INVALID_SPAN) is None  # empty context: nothing to continue


def test_outputs_of_a_prediction_matches_its_items_without_dspy_fields() -> None:
    pred = dspy.Prediction(label="billing", reasoning="charged twice", dspy_uuid="x")
    assert (
        outputs_of(pred) == dict(pred.items()) == {"label": "billing", "reasoning": "charged twice"}
    )
    copied = outputs_of(pred)
    pred.label = "changed"
    assert copied["label"] == "billing"  # a copy: later edits don't leak into the event


def test_remembered_executions_come_back_as_recorded_and_the_oldest_go() -> None:
    recent = RecentExecutions(capacity=2)
    recent.put("e1", {"text": "hi"}, {"label": "billing"})
    got = recent.get("e1")
    assert got is not None
    assert (got.inputs, got.outputs) == ({"text": "hi"}, {"label": "billing"})
    recent.put("e2", {"text": "a"}, {"label": "b"})
    recent.put("e3", {"text": "c"}, {"label": "d"})
    assert recent.get("e1") is None
    assert len(recent) == 2
