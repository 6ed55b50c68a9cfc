"""The trigger, the optimizer and the SDK give the same answer to "was this call correct?".

Each side runs its own code path: the trigger engine (execution, then label feedback, read back
from its accuracy window), the optimizer's compile child (a stored row turned into an example,
then scored on the holdout by ``evaluate`` with the default metric) and the SDK's feedback (the
metric scores the remembered outputs; the trigger counts that score correct from 0.5).
"""

from __future__ import annotations

import json
from typing import Any

import dspy
import pytest

from dspy_flywheel.compile.evaluation import evaluate
from dspy_flywheel.compile.judge import SCORE_CORRECT, exact_match, score_correct
from dspy_flywheel.contracts.events import ExecutionRecorded, FeedbackRecorded
from dspy_flywheel.optimizer.job import _examples
from dspy_flywheel.optimizer.spec import DataRow
from dspy_flywheel.sdk.feedback import Recorded, judge
from dspy_flywheel.trigger.engine import TriggerEngine
from tests.fixtures.tasks import make_metric

Outputs = dict[str, Any] | None

# (label as it arrives on Kafka, the execution's outputs, the answer all sides must give)
PAIRS: list[tuple[str, Outputs, bool | None]] = [
    ("billing", {"label": "billing"}, True),
    ("billing.", {"label": "billing"}, True),  # the trigger used to say False here
    ("billing", {"label": "Billing."}, True),
    ('"Billing"', {"label": "billing"}, True),  # a JSON string label
    ("'billing'", {"label": " BILLING "}, True),
    ("`billing`!", {"label": '"billing"'}, True),
    ("  hello \n  world ", {"answer": "Hello World"}, True),
    ("billing\u00a0", {"label": "billing"}, True),  # a no-break space is whitespace
    ("STRASSE", {"label": "straße"}, True),  # case-folded, not lower-cased
    ("billing", {"label": "billing issue"}, False),
    ("bill-ing", {"label": "billing"}, False),  # inner punctuation stays
    ("billing?", {"label": "billing"}, False),  # only . , ; : ! and quotes are stripped
    ('{"label": "Billing."}', {"label": "billing"}, True),
    ('{"label": "billing"}', {"label": "shipping"}, False),
    ('{"a": "x", "b": "y"}', {"a": "X.", "b": "y", "c": "z"}, True),
    ('{"a": "x", "b": "y"}', {"a": "x", "b": "z"}, False),
    ('{"a": "x", "b": "y"}', {"a": "x", "b": None}, False),
    ('{"a": "x", "b": "y"}', {"a": "x"}, None),  # names a field the worker lacks
    ('{"answer": "billing"}', {"label": "billing"}, True),  # one key, one output field
    ("billing", {"a": "billing", "b": "x"}, None),  # bare value, several outputs
    ("billing", {"reasoning": "r", "label": "billing"}, True),  # reasoning is not labelled
    ('{"n": 3}', {"n": "3"}, True),
    ("3", {"n": 3}, True),
    ("true", {"ok": True}, True),
    ('{"tags": ["a", "b"]}', {"tags": ["a", "b"]}, True),  # dict outputs with JSON values
    ('{"tags": ["a", "b"]}', {"tags": ["b", "a"]}, False),
    ('{"meta": {"k": 1, "j": 2}}', {"meta": {"j": 2, "k": 1}}, True),  # key order ignored
    ('{"label": "billing"}', None, False),  # the call failed
]


def executed(**fields: Any) -> ExecutionRecorded:
    base = {"worker_type": "t", "inputs_json": "{}", "success": True, "latency_ms": 1.0}
    return ExecutionRecorded(worker_id="w", execution_id="e1", timestamp_ms=1, **base | fields)


def trigger_says(label: str, outputs: Outputs) -> bool | None:
    engine = TriggerEngine()
    execution = executed(
        outputs_json=None if outputs is None else json.dumps(outputs), success=outputs is not None
    )
    engine.on_execution(execution, None, at_ms=1)
    feedback = FeedbackRecorded(execution_id="e1", worker_id="w", label=label, timestamp_ms=2)
    engine.on_feedback(feedback, None, at_ms=2)
    view = engine.evidence_view("w", at_ms=3)
    if view["window_count"] == 0:
        assert engine.unjudged == 1
        return None
    return bool(view["window_correct"] == 1)


class Replay(dspy.Module):
    """A program that returns the execution's outputs (or fails, as the execution did)."""

    def __init__(self, outputs: Outputs) -> None:
        super().__init__()
        self.outputs = outputs

    def forward(self, **inputs: Any) -> dspy.Prediction:
        if self.outputs is None:
            raise RuntimeError("the call failed")
        return dspy.Prediction(**self.outputs)


def optimizer_says(label: str, outputs: Outputs, fields: list[str]) -> bool | None:
    row = DataRow(id="1", inputs={"text": "t"}, label=label)
    examples, kept = _examples([row], fields)
    if not kept:
        return None
    result = evaluate(Replay(outputs), examples, exact_match, max_error_rate=1.0)
    return result.score == 1.0


def sdk_says(label: str, outputs: dict[str, Any]) -> bool | None:
    try:
        _, score = judge(Recorded({"text": "t"}, outputs), list(outputs), exact_match, label, None)
    except ValueError:
        return None
    assert score is not None
    return score_correct(score)


@pytest.mark.parametrize(("label", "outputs", "answer"), PAIRS)
def test_trigger_and_optimizer_agree(label: str, outputs: Outputs, answer: bool | None) -> None:
    fields = list(outputs) if outputs is not None else ["label"]
    assert trigger_says(label, outputs) is answer
    assert optimizer_says(label, outputs, fields) is answer
    if outputs is not None:  # the SDK only remembers calls that returned
        assert sdk_says(label, outputs) is answer


@pytest.mark.parametrize("label", ["{}", "null"])
def test_a_blank_label_is_no_label(label: str) -> None:
    outputs = {"label": "billing"}
    assert trigger_says(label, outputs) is None
    assert sdk_says(label, outputs) is None
    # The optimizer reads such a row as unlabelled: the recorded outputs become the example.
    examples, kept = _examples([DataRow("1", {"text": "t"}, outputs, label)], ["label"])
    assert (len(kept), examples[0].label) == (1, "billing")


@pytest.mark.parametrize("score", [0.0, 0.25, 0.4999, SCORE_CORRECT, 0.5001, 0.75, 1.0])
def test_scores_are_judged_with_one_threshold(score: float) -> None:
    expected = score >= 0.5
    by_feedback, by_execution = TriggerEngine(), TriggerEngine()
    execution = executed(outputs_json="{}", metric_score=score)
    by_execution.on_execution(execution, None, at_ms=1)
    feedback = FeedbackRecorded(execution_id="e1", worker_id="w", score=score, timestamp_ms=1)
    by_feedback.on_feedback(feedback, None, at_ms=1)
    for engine in (by_feedback, by_execution):
        view = engine.evidence_view("w", at_ms=2)
        assert (view["window_count"], view["window_correct"]) == (1, int(expected))
    assert score_correct(score) is expected


@pytest.mark.parametrize(
    ("gold", "predicted", "f1"),
    [
        ("new york", "boston", 0.0),
        ("red blue green gold", "red x y z", 0.25),
        ("red blue", "red x", 0.5),
    ],
)
def test_the_tasks_accept_a_demo_by_the_same_threshold(
    gold: str, predicted: str, f1: float
) -> None:
    metric = make_metric("f1", ["answer"])
    example, prediction = dspy.Example(answer=gold), dspy.Prediction(answer=predicted)
    assert metric(example, prediction) == pytest.approx(f1)
    assert metric(example, prediction, trace=[]) is score_correct(f1)
