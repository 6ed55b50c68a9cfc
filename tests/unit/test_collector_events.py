"""Parsing and validation of raw Kafka messages into executions, feedback or rejects."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dspy_flywheel.collector.events import Execution, Feedback, RawMessage, Rejected, parse
from dspy_flywheel.contracts.codec import encode
from dspy_flywheel.contracts.events import EVENTS, ExecutionRecorded, FeedbackRecorded
from tests.fixtures.synthetic import make_malformed


def _execution(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "worker_id": "w1",
        "worker_type": "triage",
        "program_version": "v3",
        "execution_id": "x1",
        "inputs_json": json.dumps({"ticket": "hi"}),
        "outputs_json": json.dumps({"category": "billing"}),
        "success": True,
        "error": None,
        "latency_ms": 12.5,
        "lm_calls": 2,
        "prompt_tokens": 100,
        "completion_tokens": 7,
        "metric_score": 0.75,
        "timestamp_ms": 1_700_000_000_000,
    }
    return {**record, **overrides}


def _raw(event_type: str, record: dict[str, Any], offset: int = 0) -> RawMessage:
    encoded = encode(EVENTS[event_type].from_record(record))
    return RawMessage("t-executions", 0, offset, b"w1", encoded.value, encoded.headers)


def test_execution_fields_and_event_id_from_header() -> None:
    raw = _raw("ExecutionRecorded", _execution())
    parsed = parse(raw, ExecutionRecorded)
    assert isinstance(parsed, Execution)
    assert parsed.event_id == dict(raw.headers)["event_id"].decode()
    assert parsed.inputs == {"ticket": "hi"}
    assert parsed.outputs == {"category": "billing"}
    assert (parsed.worker_id, parsed.program_version, parsed.metric_score) == ("w1", "v3", 0.75)
    assert (parsed.lm_calls, parsed.prompt_tokens, parsed.completion_tokens) == (2, 100, 7)


def test_missing_event_id_header_falls_back_to_kafka_coordinates() -> None:
    encoded = encode(ExecutionRecorded.from_record(_execution()))
    raw = RawMessage("t-executions", 2, 41, None, encoded.value, [])
    parsed = parse(raw, ExecutionRecorded)
    assert isinstance(parsed, Execution)
    assert parsed.event_id == "kafka:t-executions:2:41"


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ('{"category": "billing"}', {"category": "billing"}),
        ("billing", "billing"),
        ('"billing"', "billing"),  # JSON string literal
        ("{not json", "{not json"),  # kept as a bare value
        ("42", "42"),
        (None, None),
    ],
)
def test_feedback_label_forms(label: str | None, expected: Any) -> None:
    record = {
        "execution_id": "x1",
        "worker_id": "w1",
        "label": label,
        "score": 1.0,
        "timestamp_ms": 5,
    }
    parsed = parse(_raw("FeedbackRecorded", record), FeedbackRecorded)
    assert isinstance(parsed, Feedback)
    assert parsed.label == expected
    assert parsed.source == "user"


@pytest.mark.parametrize(
    ("event_type", "record", "reason"),
    [
        ("ExecutionRecorded", _execution(inputs_json="[1, 2]"), "invalid_inputs"),
        ("ExecutionRecorded", _execution(outputs_json="{oops"), "invalid_outputs"),
        ("ExecutionRecorded", _execution(execution_id="  "), "missing_id"),
        ("ExecutionRecorded", _execution(metric_score=1.5), "invalid_score"),
        (
            "FeedbackRecorded",
            {"execution_id": "x", "worker_id": "w", "timestamp_ms": 1},
            "empty_feedback",
        ),
        (
            "FeedbackRecorded",
            {"execution_id": "x", "worker_id": "w", "score": float("nan"), "timestamp_ms": 1},
            "invalid_score",
        ),
    ],
)
def test_invalid_records_are_rejected(event_type: str, record: dict[str, Any], reason: str) -> None:
    parsed = parse(_raw(event_type, record), EVENTS[event_type])  # type: ignore[arg-type]
    assert isinstance(parsed, Rejected)
    assert parsed.reason == reason
    assert parsed.detail


def test_every_synthetic_malformed_message_is_rejected_with_its_reason() -> None:
    for i, bad in enumerate(make_malformed(21)):
        expected = ExecutionRecorded if bad.topic_kind == "executions" else FeedbackRecorded
        raw = RawMessage(f"t-{bad.topic_kind}", 0, i, b"w", bad.value, bad.headers)
        parsed = parse(raw, expected)
        assert isinstance(parsed, Rejected), bad
        assert parsed.reason == bad.reason


def test_preparer_anonymizes_the_feedback_source_and_nested_strings() -> None:
    """Issue 15: training_examples.label_source stored ``reviewer:jane.doe@...`` raw."""
    import os

    from dspy_flywheel.collector.prepare import Preparer
    from dspy_flywheel.privacy import Anonymizer
    from dspy_flywheel.security.crypto import Cipher

    cipher = Cipher({"k": os.urandom(32)})
    preparer = Preparer(Anonymizer(cipher.pii_key), cipher)
    label = {"reply": {"to": ["ana.souza@example.com.br"], "note": '{"tel": "+55 11 91234-5678"}'}}
    feedback = _raw(
        "FeedbackRecorded",
        {
            "execution_id": "x1",
            "worker_id": "w1",
            "label": json.dumps(label),
            "source": "reviewer:ana.souza@example.com.br",
            "timestamp_ms": 1,
        },
    )
    (item,) = preparer.prepare([(feedback, parse(feedback, FeedbackRecorded))])
    assert isinstance(item, Feedback)
    assert item.source == "reviewer:<EMAIL_1>"
    assert item.label == {"reply": {"to": ["<EMAIL_1>"], "note": '{"tel": "<PHONE_1>"}'}}
