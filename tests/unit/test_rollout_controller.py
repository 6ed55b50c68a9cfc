"""The rollout controller's decisions on scripted events (no IO)."""

from __future__ import annotations

import random

import pytest

from dspy_flywheel.contracts.events import RolloutCommand
from dspy_flywheel.rollout.config import RolloutConfigError, RolloutPolicy
from dspy_flywheel.rollout.controller import CommandRefused, RolloutController
from dspy_flywheel.rollout.state import WorkerRollout


def command(  # the operator command as the rollout service reads it
    command_id: str, worker_id: str, command: str, version: int | None, by: str, why: str = ""
) -> RolloutCommand:
    return RolloutCommand(
        command_id=command_id,
        worker_id=worker_id,
        command=command,
        version=version,
        requested_by=by,
        reason=why or None,
        timestamp_ms=0,
    )


W = "router"
FAST = {"min_samples": 20, "max_samples": 4000}


def controller(**policy: object) -> RolloutController:
    settings = {**FAST, **policy}
    return RolloutController(lambda worker_id: RolloutPolicy(worker_id=worker_id, **settings))  # type: ignore[arg-type]


def serve(
    c: RolloutController, p_stable: float, p_candidate: float, calls: int, seed: int = 1
) -> list[str]:
    """Labeled calls routed like the workers do (share of the candidate), until decisions."""
    rng = random.Random(seed)
    decisions = []
    for i in range(calls):
        s = c.states[W]
        on_candidate = s.candidate is not None and rng.random() < s.share
        version = s.candidate if on_candidate else s.stable
        p = p_candidate if on_candidate else p_stable
        decisions += [d.decision for d in c.on_outcome(W, version, rng.random() < p, i)]
    return decisions


def test_a_candidate_starts_a_canary_at_the_configured_share() -> None:
    c = controller(share=0.25)
    [d] = c.on_published(
        W, 1, "candidate", 0, job_id="j1", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    )
    assert d.decision == "canary_started"
    assert (d.assignment.stable, d.assignment.candidate, d.assignment.share) == (None, 1, 0.25)
    assert d.job_id == "j1"
    assert d.traceparent is not None
    assert c.on_published(W, 1, "candidate", 5) == []  # a redelivery changes nothing


def test_good_candidate_is_promoted_and_guarded() -> None:
    c = controller()
    c.on_published(W, 1, "candidate", 0)
    decisions = serve(c, 0.6, 0.9, 3000)
    assert decisions == ["promoted"]
    s = c.states[W]
    assert (s.stable, s.candidate, s.phase, s.previous) == (1, None, "guard", None)
    assert s.baseline.labels >= 20  # the predecessor's canary record


def test_bad_candidate_is_rolled_back_and_never_retried() -> None:
    c = controller()
    c.on_published(W, 1, "serve", 0)
    c.on_published(W, 2, "candidate", 1)
    assert serve(c, 0.8, 0.2, 3000) == ["rolled_back"]
    s = c.states[W]
    assert (s.stable, s.candidate, s.rolled_back) == (1, None, [2])
    s.known.remove(2)  # even announced again, a rolled-back version gets no canary
    assert c.on_published(W, 2, "candidate", 9) == []


def test_drift_after_promotion_rolls_back_once() -> None:
    c = controller()
    c.on_published(W, 1, "serve", 0)
    c.on_published(W, 2, "candidate", 1)
    assert serve(c, 0.6, 0.9, 3000) == ["promoted"]
    assert serve(c, 0.3, 0.3, 3000, seed=2) == ["guard_rolled_back"]  # v2 drifts to 30 %
    s = c.states[W]
    assert (s.stable, s.phase, s.rolled_back) == (1, "idle", [2])
    assert serve(c, 0.1, 0.1, 3000, seed=3) == []  # the restored v1 is not guarded


def test_pinned_worker_never_changes_by_itself() -> None:
    c = controller()
    c.on_published(W, 1, "serve", 0)
    [pin] = c.on_command(command("c1", W, "pin", None, "ops"), 1)
    assert pin.decision == "pinned"
    assert pin.command_id == "c1"
    assert pin.assignment.pinned
    assert c.on_published(W, 2, "candidate", 2) == []
    assert c.on_published(W, 3, "serve", 3) == []
    assert serve(c, 0.0, 0.0, 500) == []
    assert c.tick(10**12) == []
    assert c.states[W].stable == 1
    unpinned = c.on_command(command("c2", W, "unpin", None, "ops"), 4)
    assert [d.decision for d in unpinned] == ["unpinned", "canary_started"]
    assert unpinned[-1].assignment.candidate == 2


def test_no_decision_keeps_the_current_version() -> None:
    c = controller(max_samples=400, margin=0.0)
    c.on_published(W, 1, "serve", 0)
    c.on_published(W, 2, "candidate", 1)
    assert serve(c, 0.7, 0.7, 1000) == ["kept_current"]
    s = c.states[W]
    assert (s.stable, s.candidate, s.retired) == (1, None, [2])
    timed = controller(max_duration_s=60)
    timed.on_published(W, 5, "candidate", 0)
    assert timed.tick(59_000) == []
    assert [d.decision for d in timed.tick(60_000)] == ["kept_current"]


def test_operator_commands_and_refusals() -> None:
    c = controller()
    c.on_published(W, 1, "serve", 0)
    c.on_published(W, 2, "candidate", 1)
    [d] = c.on_command(command("c", W, "promote", None, "alice", "looks good"), 2)
    assert (d.decision, d.decided_by, d.assignment.stable) == ("promoted", "alice", 2)
    assert "alice promoted v2: looks good" in d.reason
    [d] = c.on_command(command("c", W, "rollback", None, "bob"), 3)
    assert (d.decision, d.assignment.stable) == ("rolled_back", 1)
    with pytest.raises(CommandRefused, match="no published version 7"):
        c.on_command(command("c", W, "promote", 7, "bob"), 4)
    with pytest.raises(CommandRefused, match="no candidate"):
        c.on_command(command("c", W, "promote", None, "bob"), 4)
    with pytest.raises(CommandRefused, match="not pinned"):
        c.on_command(command("c", W, "unpin", None, "bob"), 4)
    [d] = c.on_command(command("c", W, "promote", 2, "bob"), 5)  # operators may re-promote
    assert d.assignment.stable == 2


def test_share_changes_apply_to_a_running_canary() -> None:
    shares = {"value": 0.1}
    c = RolloutController(lambda w: RolloutPolicy(worker_id=w, share=shares["value"]))
    c.on_published(W, 1, "candidate", 0)
    shares["value"] = 0.3
    [d] = c.on_policy(W, 5)
    assert (d.decision, d.assignment.share) == ("share_changed", 0.3)


def test_disabled_canary_promotes_at_once() -> None:
    c = controller(enabled=False)
    [d] = c.on_published(W, 1, "candidate", 0)
    assert (d.decision, d.assignment.stable, d.assignment.candidate) == ("promoted", 1, None)


def test_state_round_trips_through_json() -> None:
    c = controller()
    c.on_published(W, 1, "serve", 0)
    c.on_published(W, 2, "candidate", 1)
    serve(c, 0.6, 0.9, 200)
    state = c.states[W]
    assert WorkerRollout.from_json(state.to_json()) == state


def test_bad_settings_are_refused() -> None:
    with pytest.raises(RolloutConfigError, match="share"):
        RolloutPolicy(worker_id=W, share=1.5)
    with pytest.raises(RolloutConfigError, match="min_samples"):
        RolloutPolicy(worker_id=W, min_samples=0)
    with pytest.raises(RolloutConfigError, match="unknown rollout settings"):
        RolloutPolicy(worker_id=W).merged({"shares": 0.2}, "ops")


def test_effect_size_is_a_setting_that_speeds_up_large_differences() -> None:
    """The same live calls (0.4 against 0.8, half on the candidate): tuned for 20-point
    differences the test promotes after fewer labels than with the 5-point default."""
    with pytest.raises(RolloutConfigError, match="effect_size"):
        RolloutPolicy(worker_id=W, effect_size=0.0)
    with pytest.raises(RolloutConfigError, match="effect_size"):
        RolloutPolicy(worker_id=W).merged({"effect_size": 1.5}, "ops")
    labels = {}
    for effect_size in (0.05, 0.2):
        c = controller(share=0.5, min_samples=10, effect_size=effect_size)
        c.on_published(W, 1, "candidate", 0)
        calls = 0
        while c.states[W].phase == "canary":
            assert serve(c, 0.4, 0.8, 1, seed=calls) in ([], ["promoted"])
            calls += 1
        assert c.states[W].stable == 1
        labels[effect_size] = calls
    assert labels[0.2] < labels[0.05], labels
