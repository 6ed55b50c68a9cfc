"""Join executions with their feedback and apply the quality filters (pure: no IO).

For one execution id the sink hands over what is already known (a pending join entry, or an
example already stored) plus the events of the current batch; :func:`resolve` records what
to do in a :class:`Plan`:

* execution + feedback                    -> insert a labeled example
* execution, no feedback yet              -> wait (pending, TTL) or, when the worker's policy
                                             accepts unlabeled successes, insert it now
* feedback, no execution yet              -> wait (pending, TTL)
* feedback for a stored example           -> update its label/score (latest feedback wins)
* anything filtered out                   -> drop counted by reason + a tombstone, so late
                                             feedback for it is counted instead of orphaned

Drop reasons: failed, empty_inputs, empty_outputs, oversized, low_score, duplicate (decided by
the sink), duplicate_execution, superseded_feedback, feedback_for_dropped, plus no_feedback and
orphan_feedback when a pending entry expires (collector.maintenance).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dspy_flywheel.collector.events import Execution, Feedback
from dspy_flywheel.collector.policy import WorkerPolicy

DEFAULT_LABEL_FIELD = "output"


@dataclass(slots=True)
class PendingEntry:
    execution_id: str
    worker_id: str
    execution: Execution | None = None
    feedback: Feedback | None = None
    dropped_reason: str | None = None


@dataclass(frozen=True, slots=True)
class StoredExample:
    id: int
    execution_id: str
    worker_id: str
    score: float | None
    feedback_ts_ms: int | None
    output_fields: tuple[str, ...]


@dataclass(slots=True)
class NewExample:
    execution: Execution
    feedback: Feedback | None
    label: dict[str, Any] | None
    score: float | None


@dataclass(slots=True)
class LabelUpdate:
    example: StoredExample
    feedback: Feedback
    label: dict[str, Any] | None  # None keeps the stored label (score-only feedback)
    score: float | None


@dataclass
class Plan:
    inserts: list[NewExample] = field(default_factory=list)
    updates: list[LabelUpdate] = field(default_factory=list)
    deletes: list[StoredExample] = field(default_factory=list)
    pending: dict[str, PendingEntry] = field(default_factory=dict)  # upserts by execution id
    pending_deletes: set[str] = field(default_factory=set)
    drops: Counter[tuple[str, str]] = field(default_factory=Counter)

    def drop(self, worker_id: str, reason: str, n: int = 1) -> None:
        self.drops[worker_id, reason] += n

    def tombstone(self, execution_id: str, worker_id: str, reason: str) -> None:
        self.pending_deletes.discard(execution_id)
        self.pending[execution_id] = PendingEntry(execution_id, worker_id, dropped_reason=reason)

    def wait(self, entry: PendingEntry) -> None:
        self.pending_deletes.discard(entry.execution_id)
        self.pending[entry.execution_id] = entry

    def done_waiting(self, execution_id: str) -> None:
        self.pending.pop(execution_id, None)
        self.pending_deletes.add(execution_id)


def normalize_label(
    label: Any, output_fields: tuple[str, ...] | list[str]
) -> dict[str, Any] | None:
    """A JSON object label as is; a bare value under the single output field's name."""
    if label is None or isinstance(label, dict):
        return label
    name = output_fields[0] if len(output_fields) == 1 else DEFAULT_LABEL_FIELD
    return {name: label}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value in ({}, [])


def content_chars(value: Any) -> int:
    """Characters of the strings and scalars in a JSON value (about its JSON length)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(len(k) + content_chars(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(content_chars(v) for v in value)
    return 0 if value is None else len(str(value))


def _too_long(value: Any, policy: WorkerPolicy) -> bool:
    return value is not None and content_chars(value) > policy.max_field_chars


def execution_drop_reason(e: Execution, policy: WorkerPolicy) -> str | None:
    if not e.success:
        return "failed"
    if not e.inputs or all(_blank(v) for v in e.inputs.values()):
        return "empty_inputs"
    if not e.outputs or all(_blank(v) for v in e.outputs.values()):
        return "empty_outputs"
    if _too_long(e.inputs, policy) or _too_long(e.outputs, policy):
        return "oversized"
    return None


def _low(score: float | None, policy: WorkerPolicy) -> bool:
    return policy.min_score is not None and score is not None and score < policy.min_score


def _latest(feedbacks: list[Feedback], plan: Plan) -> Feedback | None:
    if not feedbacks:
        return None
    latest = max(enumerate(feedbacks), key=lambda p: (p[1].timestamp_ms, p[0]))[1]
    for f in feedbacks:
        if f is not latest:
            plan.drop(f.worker_id, "superseded_feedback")
    return latest


def _update_stored(
    stored: StoredExample, feedbacks: list[Feedback], policy: WorkerPolicy, plan: Plan
) -> None:
    fb = _latest(feedbacks, plan)
    if fb is None:
        return
    if stored.feedback_ts_ms is not None and fb.timestamp_ms < stored.feedback_ts_ms:
        plan.drop(fb.worker_id, "superseded_feedback")
        return
    score = fb.score if fb.score is not None else stored.score
    label = normalize_label(fb.label, stored.output_fields)
    if _low(score, policy):
        plan.deletes.append(stored)
        plan.drop(stored.worker_id, "low_score")
        plan.tombstone(stored.execution_id, stored.worker_id, "low_score")
    elif _too_long(label, policy):
        plan.drop(stored.worker_id, "oversized")
    else:
        plan.updates.append(LabelUpdate(stored, fb, label, score))


def resolve(
    execution_id: str,
    pending: PendingEntry | None,
    stored: StoredExample | None,
    executions: list[Execution],
    feedbacks: list[Feedback],
    policy: WorkerPolicy,
    plan: Plan,
) -> None:
    """Decide what the events of one execution id do, given what is already known."""
    if stored is not None:
        for e in executions:
            plan.drop(e.worker_id, "duplicate_execution")
        _update_stored(stored, feedbacks, policy, plan)
        return
    if pending is not None and pending.dropped_reason is not None:
        for e in executions:
            plan.drop(e.worker_id, "duplicate_execution")
        for f in feedbacks:
            plan.drop(f.worker_id, "feedback_for_dropped")
        return

    execution = pending.execution if pending else None
    is_new = False
    for e in executions:
        if execution is None:
            execution, is_new = e, True
        else:
            plan.drop(e.worker_id, "duplicate_execution")
    known = [pending.feedback] if pending and pending.feedback else []
    fb = _latest(known + feedbacks, plan)
    worker_id = execution.worker_id if execution else (fb.worker_id if fb else "")

    if execution is None:
        if fb is not None:
            plan.wait(PendingEntry(execution_id, worker_id, feedback=fb))
        return
    if is_new:
        reason = execution_drop_reason(execution, policy)
        if reason is not None:
            plan.drop(worker_id, reason)
            if fb is not None:
                plan.drop(worker_id, "feedback_for_dropped")
            plan.tombstone(execution_id, worker_id, reason)
            return

    output_fields = tuple(execution.outputs or ())
    if fb is not None:
        label = normalize_label(fb.label, output_fields)
        score = fb.score if fb.score is not None else execution.metric_score
    elif policy.accept_unlabeled_success:
        label, score = None, execution.metric_score
    else:
        if is_new:
            plan.wait(PendingEntry(execution_id, worker_id, execution=execution))
        return

    reason = (
        "low_score" if _low(score, policy) else "oversized" if _too_long(label, policy) else None
    )
    if reason is not None:
        plan.drop(worker_id, reason)
        plan.tombstone(execution_id, worker_id, reason)
        return
    plan.inserts.append(NewExample(execution, fb, label, score))
    if pending is not None:
        plan.done_waiting(execution_id)
