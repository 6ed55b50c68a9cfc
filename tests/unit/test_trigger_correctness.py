import json

import pytest

from dspy_flywheel.compile.judge import score_correct
from dspy_flywheel.trigger.correctness import (
    ExecutionOutcome,
    Expiring,
    LabeledFeedback,
    label_matches,
)


@pytest.mark.parametrize(
    ("label", "outputs", "expected"),
    [
        ('{"label": "billing"}', {"label": "Billing "}, True),
        ('{"label": "billing"}', {"label": "shipping"}, False),
        ("billing", {"category": "  BILLING"}, True),  # bare string, single output
        ('"billing"', {"category": "billing"}, True),  # JSON string literal
        ("hello   world", {"answer": "Hello world"}, True),
        ('{"a": "x", "b": "y"}', {"a": "x", "b": "y", "c": "z"}, True),
        ('{"a": "x", "b": "y"}', {"a": "x"}, None),  # names a field the worker lacks
        ('{"a": "x", "b": "y"}', {"a": "x", "b": None}, False),  # output missing
        ("billing.", {"category": '"Billing"'}, True),  # punctuation and quotes stripped
        ('{"answer": "billing"}', {"category": "billing"}, True),  # one key, one field
        ("billing", {"reasoning": "r", "label": "billing"}, True),  # reasoning is no label
        ('{"n": 3}', {"n": 3}, True),
        ("billing", {"a": "billing", "b": "x"}, None),  # bare string, several outputs
        ("{}", {"a": "x"}, None),
        ("billing", {}, None),
        ('{"n": 3}', {"n": "3"}, True),
        ('{"tags": ["b", "a"]}', {"tags": ["b", "a"]}, True),
        ('{"tags": ["b", "a"]}', {"tags": ["a", "b"]}, False),
    ],
)
def test_label_matches(label: str, outputs: dict[str, object], expected: bool | None) -> None:
    assert label_matches(label, json.dumps(outputs)) is expected


def test_failed_execution_is_incorrect() -> None:
    assert label_matches('{"label": "x"}', None) is False


def test_score_threshold() -> None:
    assert score_correct(0.5)
    assert score_correct(1.0)
    assert not score_correct(0.49)


def outcome(worker: str = "w") -> ExecutionOutcome:
    return ExecutionOutcome(worker, '{"a": 1}', True, None, 0)


def test_execution_cache_ttl_and_bound() -> None:
    cache: Expiring[ExecutionOutcome] = Expiring(max_entries=2, ttl_s=10)
    cache.put("e1", outcome(), now=0)
    cache.put("e2", outcome(), now=1)
    assert cache.get("e1", now=5) is not None
    assert cache.get("e1", now=10.5) is None  # expired
    cache.put("e3", outcome(), now=2)
    assert len(cache) == 2
    assert cache.get("e1", now=2) is None


def test_pending_feedback_expires() -> None:
    pending: Expiring[LabeledFeedback] = Expiring(10_000, ttl_s=5)
    pending.put("e1", LabeledFeedback("e1", "w", "x", 0, None), now=0)
    pending.put("e2", LabeledFeedback("e2", "w", "x", 0, None), now=3)
    assert pending.expire(now=6) == 1
    assert pending.take("e1", now=6) is None
    taken = pending.take("e2", now=6)
    assert taken is not None
    assert taken.execution_id == "e2"
    assert pending.expired == 1
