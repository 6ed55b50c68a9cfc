"""The demo's lifecycle view keeps what each status of the optimization job reported."""

from __future__ import annotations

import json
from dataclasses import replace

from dspy_flywheel.contracts.events import (
    Alert,
    OptimizationRequested,
    OptimizationStatusChanged,
    RolloutChanged,
)
from dspy_flywheel.demo.watch import Lifecycle

REQUEST = OptimizationRequested(
    job_id="j", worker_id="w", reason="performance", optimizer="MIPROv2", timestamp_ms=1
)


def status(job_id: str, state: str, details: dict[str, object]) -> OptimizationStatusChanged:
    return OptimizationStatusChanged(
        worker_id="w",
        job_id=job_id,
        status=state,
        details_json=json.dumps(details),
        timestamp_ms=2,
    )


def test_details_of_earlier_statuses_survive_later_ones() -> None:
    lifecycle = Lifecycle(worker_id="w")
    lifecycle.apply(REQUEST, None)
    split = {"train": 12, "val": 4, "holdout": 5}
    lifecycle.apply(status("j", "running", {"split": split}), None)
    final = {"lm_calls": 21, "tokens": 7835}
    lifecycle.apply(status("j", "succeeded", final), None)
    assert lifecycle.details == {"split": split, "lm_calls": 21, "tokens": 7835}
    assert lifecycle.status == "succeeded"


def test_statuses_of_other_jobs_and_workers_are_ignored() -> None:
    lifecycle = Lifecycle(worker_id="w")
    lifecycle.apply(REQUEST, None)
    lifecycle.apply(status("other", "failed", {"x": 1}), None)
    other_worker = replace(status("j", "failed", {"y": 2}), worker_id="v")
    lifecycle.apply(other_worker, None)
    assert lifecycle.details == {}
    assert lifecycle.status is None


def test_the_first_alert_for_the_worker_is_kept() -> None:
    lifecycle = Lifecycle(worker_id="w")
    first = Alert(
        alert_id="a1",
        worker_id="w",
        severity="warning",
        kind="accuracy_below_threshold",
        message="accuracy low",
        timestamp_ms=3,
    )
    lifecycle.apply(replace(first, worker_id="v"), None)  # another worker's
    lifecycle.apply(first, None)
    lifecycle.apply(replace(first, message="later"), None)
    assert lifecycle.alert == first


def test_rollout_decisions_are_kept_in_order() -> None:
    lifecycle = Lifecycle(worker_id="w")
    for sequence, decision in enumerate(("canary_started", "promoted"), start=1):
        changed = RolloutChanged(
            worker_id="w", sequence=sequence, decision=decision, reason="r", timestamp_ms=1
        )
        lifecycle.apply(changed, None)
    other = RolloutChanged(worker_id="v", sequence=1, decision="rolled_back", timestamp_ms=1)
    lifecycle.apply(other, None)
    assert [r.decision for r in lifecycle.rollouts] == ["canary_started", "promoted"]
    promoted = lifecycle.decision("promoted", "rolled_back")
    assert promoted is not None
    assert promoted.sequence == 2
    assert lifecycle.decision("kept_current") is None
    assert lifecycle.decision() == promoted
