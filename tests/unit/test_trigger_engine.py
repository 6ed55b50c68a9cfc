"""The trigger's decisions on a deterministic clock (no Kafka, no DB)."""

import json
from dataclasses import replace
from typing import Any

from dspy_flywheel.contracts.events import (
    ExecutionRecorded,
    FeedbackRecorded,
    OptimizationRequested,
    OptimizationStatusChanged,
)
from dspy_flywheel.trigger.config import TriggerPolicyConfig
from dspy_flywheel.trigger.engine import EngineOptions, PlannedRequest, TriggerEngine
from dspy_flywheel.trigger.policy import Debounce
from dspy_flywheel.trigger.state import WorkerState

T0 = 1_700_000_000_000
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def engine_with(config: TriggerPolicyConfig, **options: object) -> TriggerEngine:
    engine = TriggerEngine(EngineOptions(**options))  # type: ignore[arg-type]
    engine.set_config(config.worker_id, config)
    return engine


class Feeder:
    def __init__(self, engine: TriggerEngine, worker: str = "w1") -> None:
        self.engine, self.worker, self.n, self.t = engine, worker, 0, T0

    def send(self, correct: bool, *, dt_ms: int = 100) -> list[PlannedRequest]:
        self.n += 1
        self.t += dt_ms
        feedback = FeedbackRecorded(
            execution_id=f"e{self.n}",
            worker_id=self.worker,
            score=1.0 if correct else 0.0,
            timestamp_ms=self.t,
        )
        return self.engine.on_feedback(feedback, TRACE, at_ms=self.t)

    def pattern(self, accuracy_tenths: int, count: int) -> list[PlannedRequest]:
        out: list[PlannedRequest] = []
        for i in range(count):
            out += self.send(i % 10 < accuracy_tenths)
        return out


def perf_config(**kw: object) -> TriggerPolicyConfig:
    base = {"threshold": 0.8, "window_size": 20, "min_examples": 10, "cooldown_seconds": 600}
    base.update(kw)
    return TriggerPolicyConfig(worker_id="w1", policy="performance", **base)  # type: ignore[arg-type]


def test_drop_fires_exactly_once_then_cooldown_holds() -> None:
    engine = engine_with(perf_config())
    feed = Feeder(engine)
    assert feed.pattern(9, 40) == []  # 0.9 accuracy: nothing
    fired = feed.pattern(6, 30)  # 0.6: one request, then cooldown
    assert len(fired) == 1
    request = fired[0]
    evidence = request.evidence
    assert request.reason == "performance"
    assert evidence["accuracy"] < 0.8
    assert evidence["window_count"] == 20
    assert evidence["threshold"] == 0.8
    assert evidence["min_examples"] == 10
    assert request.parent_traceparent == TRACE
    state = engine.states["w1"]
    assert state.in_flight_job_id == request.job_id
    assert "in flight" in state.note
    # job ends but the cooldown still holds although accuracy stays low
    finish(engine, request.job_id, "failed", feed.t)
    assert feed.pattern(5, 30) == []
    assert "cooldown" in state.note


def test_fires_again_after_cooldown_when_still_low() -> None:
    engine = engine_with(perf_config(cooldown_seconds=5))
    feed = Feeder(engine)
    first = feed.pattern(5, 20)
    assert len(first) == 1
    finish(engine, first[0].job_id, "rejected", feed.t)
    assert feed.pattern(5, 10) == []  # 10 events x 100 ms = 1 s < 5 s cooldown
    feed.t += 5_000
    assert len(feed.pattern(5, 10)) == 1


def test_in_flight_blocks_until_terminal_status() -> None:
    engine = engine_with(perf_config(cooldown_seconds=0))
    feed = Feeder(engine)
    first = feed.pattern(5, 20)
    assert len(first) == 1
    assert feed.pattern(5, 10) == []
    finish(engine, first[0].job_id, "running", feed.t)
    assert feed.pattern(5, 10) == []
    finish(engine, first[0].job_id, "failed", feed.t)
    assert len(feed.pattern(5, 10)) == 1


def test_success_resets_window() -> None:
    engine = engine_with(perf_config(cooldown_seconds=0))
    feed = Feeder(engine)
    job = feed.pattern(5, 20)[0].job_id
    finish(engine, job, "succeeded", feed.t)
    assert len(engine.states["w1"].window) == 0
    assert feed.pattern(5, 9) == []  # below min_examples again
    assert "waiting" in engine.states["w1"].note


def finish(engine: TriggerEngine, job_id: str, status: str, at_ms: int) -> None:
    engine.on_status(
        OptimizationStatusChanged(job_id=job_id, worker_id="w1", status=status, timestamp_ms=at_ms)
    )


def requested(job_id: str, at_ms: int) -> OptimizationRequested:
    return OptimizationRequested(
        job_id=job_id, worker_id="w1", reason="manual", optimizer="MIPROv2", timestamp_ms=at_ms
    )


def test_blocked_breach_reported_once_per_breach_after_a_failed_job() -> None:
    engine = engine_with(perf_config(cooldown_seconds=600))
    feed = Feeder(engine)
    (request,) = feed.pattern(5, 20)
    assert feed.pattern(5, 10) == []
    assert engine.take_blocked() == []  # in flight: the request's own alert covers it
    finish(engine, request.job_id, "failed", feed.t)
    assert feed.pattern(5, 10) == []
    (breach,) = engine.take_blocked()
    assert breach.worker_id == "w1"
    assert breach.why.startswith("cooldown until ")
    assert breach.evidence["cooldown_until_ms"] == request.timestamp_ms + 600_000
    assert breach.evidence["accuracy"] < 0.8
    assert (breach.last_job_id, breach.last_status) == (request.job_id, f"{request.job_id}:failed")
    assert breach.parent_traceparent == TRACE
    assert engine.states["w1"].blocked_alerted
    assert feed.pattern(5, 30) == []
    assert engine.take_blocked() == []  # same breach: reported once
    assert feed.pattern(10, 20) == []  # recovered ...
    assert feed.pattern(5, 20) == []  # ... and low again, still in cooldown: a new breach
    (again,) = engine.take_blocked()
    assert again.timestamp_ms > breach.timestamp_ms


def test_blocked_breach_by_too_few_new_examples() -> None:
    engine = engine_with(perf_config(cooldown_seconds=0, min_new_examples=15))
    feed = Feeder(engine)
    (request,) = feed.pattern(5, 20)
    assert engine.take_blocked() == []  # before the first request: still waiting for data
    finish(engine, request.job_id, "rejected", feed.t)
    assert feed.pattern(5, 5) == []
    (breach,) = engine.take_blocked()
    new, needed = breach.evidence["new_examples_since_last"], breach.evidence["min_new_examples"]
    assert (needed, breach.why) == (15, f"{new}/15 new examples since the last request")
    assert 0 < new < 15
    assert "cooldown_until_ms" not in breach.evidence


def test_blocked_flag_survives_a_restart() -> None:
    engine = engine_with(perf_config())
    feed = Feeder(engine)
    (request,) = feed.pattern(5, 20)
    finish(engine, request.job_id, "failed", feed.t)
    feed.pattern(5, 5)
    assert len(engine.take_blocked()) == 1
    restarted = engine_with(perf_config())
    restarted.states.update({"w1": WorkerState.from_json("w1", engine.states["w1"].to_json())})
    feed.engine = restarted
    assert feed.pattern(5, 10) == []
    assert restarted.take_blocked() == []


def test_debounce_needs_consecutive_low_evaluations() -> None:
    engine = engine_with(
        perf_config(window_size=4, min_examples=4, threshold=0.5), debounce=Debounce(evaluations=3)
    )
    feed = Feeder(engine)
    # window after each send, oldest first; "below" means fewer than 2 of 4 correct
    steps = [
        (True, False),
        (True, False),
        (True, False),
        (True, False),  # TTTT 1.0
        (False, False),
        (False, False),  # TTFF 0.5: not below
        (False, False),  # TFFF 0.25: streak 1
        (True, False),  # FFFT 0.25: streak 2
        (True, False),  # FFTT 0.5: streak reset
        (False, False),
        (False, False),  # FTTF, TTFF 0.5
        (False, False),
        (False, False),  # TFFF, FFFF: streak 1, 2
        (False, True),  # streak 3: fires
    ]
    for correct, fires in steps:
        assert len(feed.send(correct)) == int(fires)


def test_debounce_seconds_fires_on_tick() -> None:
    engine = engine_with(
        perf_config(window_size=10, min_examples=10), debounce=Debounce(evaluations=99, seconds=2)
    )
    feed = Feeder(engine)
    assert feed.pattern(5, 10) == []
    assert engine.tick(feed.t + 1000) == []
    assert len(engine.tick(feed.t + 2500)) == 1


def test_min_new_examples_since_last_request() -> None:
    engine = engine_with(perf_config(cooldown_seconds=0, min_new_examples=15))
    feed = Feeder(engine)
    first: list[PlannedRequest] = []
    while not first:
        first = feed.send(False)
    finish(engine, first[0].job_id, "failed", feed.t)
    state = engine.states["w1"]
    assert state.new_examples == 0
    for _ in range(14):
        assert feed.send(False) == []
    assert "14/15 new examples" in state.note
    fired = feed.send(False)
    assert len(fired) == 1
    assert fired[0].evidence["new_examples_since_last"] == 15


def test_threshold_change_applies_to_next_decision() -> None:
    engine = engine_with(perf_config(threshold=0.5))
    feed = Feeder(engine)
    assert feed.pattern(6, 20) == []  # 0.6 >= 0.5
    engine.set_config("w1", perf_config(threshold=0.7))
    fired = feed.pattern(6, 2)
    assert len(fired) == 1
    assert fired[0].evidence["threshold"] == 0.7


def test_time_window_excludes_old_labels() -> None:
    engine = engine_with(perf_config(window_seconds=10, min_examples=5))
    feed = Feeder(engine)
    feed.pattern(0, 5)  # all wrong, but...
    feed.t += 60_000  # ...a minute ago
    assert engine.tick(feed.t) == []
    view = engine.evidence_view("w1", feed.t)
    assert view["window_count"] == 0
    assert view["labeled_total"] == 5


def executed(execution_id: str, **fields: Any) -> ExecutionRecorded:
    return ExecutionRecorded(
        worker_id="w1",
        worker_type="t",
        execution_id=execution_id,
        inputs_json="{}",
        success=True,
        latency_ms=1.0,
        timestamp_ms=T0,
        **fields,
    )


def test_label_feedback_judged_against_outputs_in_any_order() -> None:
    engine = engine_with(perf_config(window_size=4, min_examples=4))
    execution = executed("x1", outputs_json='{"label": "a"}')
    feedback = FeedbackRecorded(execution_id="x1", worker_id="w1", label="A", timestamp_ms=T0)
    assert engine.on_feedback(feedback, None, at_ms=T0) == []
    assert len(engine.pending) == 1  # waiting for its execution
    engine.on_execution(execution, None, at_ms=T0)
    assert engine.states["w1"].labeled_total == 1
    wrong = executed("x2", outputs_json='{"label": "b"}')
    engine.on_execution(wrong, None, at_ms=T0)
    engine.on_feedback(replace(feedback, execution_id="x2"), None, at_ms=T0)
    view = engine.evidence_view("w1", T0)
    assert (view["window_count"], view["window_correct"]) == (2, 1)


def test_metric_score_on_execution_counts_and_feedback_overrides() -> None:
    engine = engine_with(perf_config())
    engine.on_execution(executed("x1", outputs_json="{}", metric_score=0.2), None, at_ms=T0)
    engine.on_feedback(
        FeedbackRecorded(execution_id="x1", worker_id="w1", score=0.9, timestamp_ms=T0),
        None,
        at_ms=T0,
    )
    view = engine.evidence_view("w1", T0)
    assert (view["window_count"], view["window_correct"], view["labeled_total"]) == (1, 1, 1)


def test_periodic_interval_and_skip_when_in_flight() -> None:
    config = TriggerPolicyConfig(
        worker_id="w1",
        policy="periodic",
        interval_seconds=10,
        optimizer="MIPROv2",
        optimizer_params_json='{"auto": "light"}',
    )
    engine = engine_with(config)
    assert engine.tick(T0) == []  # anchors the schedule
    assert engine.tick(T0 + 9_000) == []
    fired = engine.tick(T0 + 10_000)
    assert len(fired) == 1
    assert fired[0].reason == "periodic"
    assert fired[0].config.optimizer == "MIPROv2"
    assert engine.tick(T0 + 20_000) == []  # job in flight: slot skipped
    finish(engine, fired[0].job_id, "succeeded", T0 + 21_000)
    assert engine.tick(T0 + 29_000) == []
    assert len(engine.tick(T0 + 30_000)) == 1


def test_periodic_cron() -> None:
    engine = engine_with(TriggerPolicyConfig(worker_id="w1", policy="periodic", cron="*/5 * * * *"))
    start = 1_700_000_100_000  # 22:15:00 UTC
    assert engine.tick(start) == []
    assert engine.tick(start + 60_000) == []
    assert len(engine.tick(start + 300_000)) == 1


def test_disabled_manual_and_unconfigured_never_fire() -> None:
    for config in (
        perf_config(enabled=False),
        TriggerPolicyConfig(worker_id="w1", policy="manual", min_examples=1),
    ):
        engine = engine_with(config)
        assert Feeder(engine).pattern(0, 30) == []
    assert Feeder(TriggerEngine()).pattern(0, 60) == []
    defaulted = TriggerEngine(EngineOptions(default_policy="performance"))
    assert len(Feeder(defaulted).pattern(0, 60)) == 1


def test_requests_seen_on_topic_start_cooldown() -> None:
    engine = engine_with(perf_config())
    engine.on_request(requested("manual-1", T0))
    finish(engine, "manual-1", "failed", T0)
    assert Feeder(engine).pattern(0, 30) == []
    assert "cooldown" in engine.states["w1"].note


def test_final_status_read_before_request_leaves_nothing_in_flight() -> None:
    engine = engine_with(perf_config(cooldown_seconds=0))
    finish(engine, "j1", "failed", T0)
    engine.on_request(requested("j1", T0))
    assert engine.states["w1"].in_flight_job_id is None


def test_in_flight_timeout() -> None:
    engine = engine_with(perf_config(cooldown_seconds=0), in_flight_timeout_s=60)
    feed = Feeder(engine)
    first = feed.pattern(5, 20)
    assert len(first) == 1
    assert engine.tick(feed.t + 59_000) == []
    again = engine.tick(feed.t + 61_000)  # the stuck job no longer blocks; accuracy still low
    assert len(again) == 1
    assert again[0].job_id != first[0].job_id
    assert engine.states["w1"].in_flight_job_id == again[0].job_id


def test_state_round_trips_through_json() -> None:
    engine = engine_with(perf_config())
    feed = Feeder(engine)
    feed.pattern(5, 20)
    state = engine.states["w1"]
    again = WorkerState.from_json("w1", json.loads(json.dumps(state.to_json())))
    assert again.to_json() == state.to_json()
    assert again.window.stats(20, feed.t, None) == state.window.stats(20, feed.t, None)


def test_the_served_version_is_read_from_the_execution() -> None:
    engine = TriggerEngine()
    for text, version in [("3", 3), (None, None), ("v1", None)]:
        assert engine.remember_execution(executed("x", program_version=text)).version == version
