"""Executions meet their feedback: one judged outcome per call, by version."""

from __future__ import annotations

import json
from typing import Any

from dspy_flywheel.contracts.events import ExecutionRecorded, FeedbackRecorded
from dspy_flywheel.rollout.outcomes import OutcomeJoin


def execution(eid: str, version: str | None, label: str, **extra: Any) -> ExecutionRecorded:
    fields: dict[str, Any] = {"outputs_json": json.dumps({"label": label}), "success": True}
    return ExecutionRecorded(
        execution_id=eid,
        worker_id="w",
        worker_type="t",
        program_version=version,
        inputs_json="{}",
        latency_ms=1.0,
        timestamp_ms=5,
        **fields | extra,
    )


def feedback(eid: str, label: str | None = None, score: float | None = None) -> FeedbackRecorded:
    return FeedbackRecorded(
        execution_id=eid, worker_id="w", label=label, score=score, timestamp_ms=6
    )


def test_label_after_execution() -> None:
    join = OutcomeJoin()
    assert join.on_execution(execution("e1", "2", "billing")) is None
    outcome = join.on_feedback(feedback("e1", label="Billing."))
    assert outcome is not None
    assert (outcome.version, outcome.correct) == (2, True)
    assert join.on_feedback(feedback("e1", label="other")) is None  # counted once


def test_feedback_before_execution_and_scores() -> None:
    join = OutcomeJoin()
    assert join.on_feedback(feedback("e2", score=0.2)) is None
    outcome = join.on_execution(execution("e2", None, "x"))
    assert outcome is not None
    assert (outcome.version, outcome.correct) == (None, False)
    scored = join.on_execution(execution("e3", "1", "x", metric_score=0.9))
    assert scored is not None
    assert scored.correct


def test_failed_execution_is_wrong_and_unjudgeable_label_is_skipped() -> None:
    join = OutcomeJoin()
    join.on_execution(execution("e4", "1", "x", success=False, outputs_json=None))
    outcome = join.on_feedback(feedback("e4", label="billing"))
    assert outcome is not None
    assert not outcome.correct
    join.on_execution(execution("e5", "1", "x", outputs_json="not json"))
    assert join.on_feedback(feedback("e5", label="billing")) is None
