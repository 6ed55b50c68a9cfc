"""The pure join + quality filter decisions (collector.join.resolve)."""

from __future__ import annotations

from typing import Any

from dspy_flywheel.collector.events import Execution, Feedback
from dspy_flywheel.collector.join import (
    PendingEntry,
    Plan,
    StoredExample,
    normalize_label,
    resolve,
)
from dspy_flywheel.collector.policy import WorkerPolicy

POLICY = WorkerPolicy()


def execution(eid: str = "x1", **kw: Any) -> Execution:
    fields: dict[str, Any] = {
        "event_id": f"e-{eid}",
        "worker_id": "w",
        "worker_type": "t",
        "program_version": None,
        "execution_id": eid,
        "inputs": {"q": "hello"},
        "outputs": {"a": "world"},
        "success": True,
        "latency_ms": 1.0,
        "lm_calls": 1,
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "metric_score": None,
        "timestamp_ms": 100,
    }
    fields.update(kw)
    return Execution(**fields)


def feedback(eid: str = "x1", ts: int = 200, **kw: Any) -> Feedback:
    fields: dict[str, Any] = {
        "event_id": f"f-{eid}-{ts}",
        "worker_id": "w",
        "execution_id": eid,
        "label": {"a": "right"},
        "score": 1.0,
        "source": "user",
        "timestamp_ms": ts,
    }
    fields.update(kw)
    return Feedback(**fields)


def run(
    pending: PendingEntry | None = None,
    stored: StoredExample | None = None,
    execs: list[Execution] | None = None,
    fbs: list[Feedback] | None = None,
    policy: WorkerPolicy = POLICY,
) -> Plan:
    plan = Plan()
    resolve("x1", pending, stored, execs or [], fbs or [], policy, plan)
    return plan


def test_pair_in_one_batch_is_stored_labeled() -> None:
    plan = run(execs=[execution()], fbs=[feedback()])
    [new] = plan.inserts
    assert new.label == {"a": "right"}
    assert new.score == 1.0
    assert not plan.pending
    assert not plan.drops


def test_execution_waits_for_feedback_by_default() -> None:
    plan = run(execs=[execution()])
    assert not plan.inserts
    assert plan.pending["x1"].execution is not None


def test_unlabeled_success_is_stored_when_policy_allows() -> None:
    plan = run(
        execs=[execution(metric_score=0.9)], policy=WorkerPolicy(accept_unlabeled_success=True)
    )
    [new] = plan.inserts
    assert new.label is None
    assert new.score == 0.9


def test_feedback_first_then_execution_joins_from_pending() -> None:
    waiting = run(fbs=[feedback()]).pending["x1"]
    assert waiting.feedback is not None
    assert waiting.execution is None
    plan = run(pending=waiting, execs=[execution()])
    assert len(plan.inserts) == 1
    assert plan.pending_deletes == {"x1"}


def test_execution_pending_then_feedback() -> None:
    waiting = PendingEntry("x1", "w", execution=execution())
    plan = run(pending=waiting, fbs=[feedback()])
    assert len(plan.inserts) == 1
    assert plan.pending_deletes == {"x1"}


def test_failed_execution_dropped_and_tombstoned() -> None:
    plan = run(execs=[execution(success=False, outputs=None)], fbs=[feedback()])
    assert plan.drops == {("w", "failed"): 1, ("w", "feedback_for_dropped"): 1}
    assert plan.pending["x1"].dropped_reason == "failed"
    later = run(pending=plan.pending["x1"], fbs=[feedback(ts=900)])
    assert later.drops == {("w", "feedback_for_dropped"): 1}
    assert not later.inserts


def test_empty_and_oversized_fields() -> None:
    assert run(execs=[execution(inputs={"q": "  "})]).drops == {("w", "empty_inputs"): 1}
    assert run(execs=[execution(outputs={"a": ""})]).drops == {("w", "empty_outputs"): 1}
    small = WorkerPolicy(max_field_chars=10)
    assert run(execs=[execution(inputs={"q": "x" * 50})], policy=small).drops == {
        ("w", "oversized"): 1
    }
    big_label = feedback(label={"a": "y" * 50})
    assert run(execs=[execution()], fbs=[big_label], policy=small).drops == {("w", "oversized"): 1}


def test_low_score_from_feedback_or_metric() -> None:
    strict = WorkerPolicy(min_score=0.5)
    assert run(execs=[execution()], fbs=[feedback(score=0.2)], policy=strict).drops == {
        ("w", "low_score"): 1
    }
    lenient_unlabeled = WorkerPolicy(min_score=0.5, accept_unlabeled_success=True)
    plan = run(execs=[execution(metric_score=0.1)], policy=lenient_unlabeled)
    assert plan.drops == {("w", "low_score"): 1}
    assert not plan.inserts
    label_only = feedback(score=None)
    plan = run(execs=[execution(metric_score=0.9)], fbs=[label_only], policy=strict)
    assert plan.inserts[0].score == 0.9


def test_latest_feedback_wins_and_others_are_counted() -> None:
    plan = run(
        execs=[execution()],
        fbs=[feedback(ts=300, label={"a": "new"}), feedback(ts=250, label={"a": "old"})],
    )
    assert plan.inserts[0].label == {"a": "new"}
    assert plan.drops == {("w", "superseded_feedback"): 1}


def test_late_feedback_updates_a_stored_example() -> None:
    stored = StoredExample(7, "x1", "w", None, None, ("a",))
    plan = run(stored=stored, fbs=[feedback(label="bare")])
    [update] = plan.updates
    assert update.label == {"a": "bare"}
    older = StoredExample(7, "x1", "w", 1.0, 10_000, ("a",))
    assert run(stored=older, fbs=[feedback(ts=5)]).drops == {("w", "superseded_feedback"): 1}


def test_low_score_feedback_removes_a_stored_example() -> None:
    stored = StoredExample(7, "x1", "w", None, None, ("a",))
    plan = run(stored=stored, fbs=[feedback(score=0.1)], policy=WorkerPolicy(min_score=0.5))
    assert plan.deletes == [stored]
    assert plan.pending["x1"].dropped_reason == "low_score"


def test_redelivered_execution_with_new_event_id_is_a_duplicate() -> None:
    stored = StoredExample(7, "x1", "w", None, None, ("a",))
    assert run(stored=stored, execs=[execution()]).drops == {("w", "duplicate_execution"): 1}
    plan = run(execs=[execution(), execution(event_id="e-again")], fbs=[feedback()])
    assert len(plan.inserts) == 1
    assert plan.drops == {("w", "duplicate_execution"): 1}


def test_normalize_label() -> None:
    assert normalize_label("billing", ("category",)) == {"category": "billing"}
    assert normalize_label("billing", ("a", "b")) == {"output": "billing"}
    assert normalize_label({"a": 1}, ("a",)) == {"a": 1}
    assert normalize_label(None, ("a",)) is None
