"""The demo's lifecycle view keeps what each status of the optimization job reported."""

from __future__ import annotations

import json

from dspy_flywheel.demo.watch import Lifecycle


def status(job_id: str, state: str, details: dict[str, object]) -> dict[str, object]:
    return {
        "worker_id": "w",
        "job_id": job_id,
        "status": state,
        "progress": None,
        "message": None,
        "details_json": json.dumps(details),
    }


def test_details_of_earlier_statuses_survive_later_ones() -> None:
    lifecycle = Lifecycle(worker_id="w")
    lifecycle.apply("OptimizationRequested", {"worker_id": "w", "job_id": "j"}, None)
    split = {"train": 12, "val": 4, "holdout": 5}
    lifecycle.apply("OptimizationStatusChanged", status("j", "running", {"split": split}), None)
    final = {"lm_calls": 21, "tokens": 7835}
    lifecycle.apply("OptimizationStatusChanged", status("j", "succeeded", final), None)
    assert lifecycle.details == {"split": split, "lm_calls": 21, "tokens": 7835}
    assert lifecycle.status == "succeeded"


def test_statuses_of_other_jobs_and_workers_are_ignored() -> None:
    lifecycle = Lifecycle(worker_id="w")
    lifecycle.apply("OptimizationRequested", {"worker_id": "w", "job_id": "j"}, None)
    lifecycle.apply("OptimizationStatusChanged", status("other", "failed", {"x": 1}), None)
    other_worker = {**status("j", "failed", {"y": 2}), "worker_id": "v"}
    lifecycle.apply("OptimizationStatusChanged", other_worker, None)
    assert lifecycle.details == {}
    assert lifecycle.status is None


def test_the_first_alert_for_the_worker_is_kept() -> None:
    lifecycle = Lifecycle(worker_id="w")
    first = {"worker_id": "w", "severity": "warning", "message": "accuracy low"}
    lifecycle.apply("Alert", {**first, "worker_id": "v"}, None)  # another worker's
    lifecycle.apply("Alert", first, None)
    lifecycle.apply("Alert", {**first, "message": "later"}, None)
    assert lifecycle.alert == first


def test_rollout_decisions_are_kept_in_order() -> None:
    lifecycle = Lifecycle(worker_id="w")
    for sequence, decision in enumerate(("canary_started", "promoted"), start=1):
        record = {"worker_id": "w", "sequence": sequence, "decision": decision, "reason": "r"}
        lifecycle.apply("RolloutChanged", record, None)
    lifecycle.apply("RolloutChanged", {"worker_id": "v", "decision": "rolled_back"}, None)
    assert [r["decision"] for r in lifecycle.rollouts] == ["canary_started", "promoted"]
    assert lifecycle.decision("promoted", "rolled_back")["sequence"] == 2  # type: ignore[index]
    assert lifecycle.decision("kept_current") is None
    assert lifecycle.decision()["decision"] == "promoted"  # type: ignore[index]
