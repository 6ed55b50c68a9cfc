"""The trigger's in-memory model: applies decoded events to worker states and decides.

No IO here: the app feeds records in, persists ``dirty`` states and publishes the returned
``PlannedRequest``s and the ``BlockedBreach``es it takes with ``take_blocked()``.
Deterministic given the same events, configs and clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from dspy_flywheel.compile.judge import score_correct
from dspy_flywheel.contracts.events import (
    ExecutionRecorded,
    FeedbackRecorded,
    OptimizationRequested,
    OptimizationStatusChanged,
    now_ms,
)
from dspy_flywheel.contracts.ids import new_id
from dspy_flywheel.metrics import trigger as trigger_metrics
from dspy_flywheel.trigger.config import InvalidConfig, TriggerPolicyConfig
from dspy_flywheel.trigger.correctness import (
    ExecutionOutcome,
    Expiring,
    LabeledFeedback,
    label_matches,
)
from dspy_flywheel.trigger.policy import Blocked, Debounce, Decision, evaluate
from dspy_flywheel.trigger.state import Observation, WorkerState

log = logging.getLogger(__name__)

TERMINAL_STATUSES = frozenset({"succeeded", "rejected", "failed", "cancelled"})
DEFAULT_WINDOW = 50


@dataclass(frozen=True)
class PlannedRequest:
    job_id: str
    worker_id: str
    reason: str
    evidence: dict[str, Any]
    config: TriggerPolicyConfig
    parent_traceparent: str | None
    timestamp_ms: int
    window_traceparents: tuple[str, ...] = ()  # the calls whose accuracy decided (span links)


@dataclass(frozen=True)
class BlockedBreach:
    """Accuracy is below the threshold, but the cooldown or too few new examples keep the
    trigger from requesting an optimization (reported once per breach)."""

    worker_id: str
    why: str
    evidence: dict[str, Any]
    last_job_id: str | None
    last_status: str | None  # "<job id>:<status>" of the last status seen
    parent_traceparent: str | None
    timestamp_ms: int


@dataclass(frozen=True)
class EngineOptions:
    debounce: Debounce = field(default_factory=Debounce)
    in_flight_timeout_s: float = 3600.0
    reset_window_on_success: bool = True
    default_policy: str | None = None


class TriggerEngine:
    def __init__(
        self,
        options: EngineOptions | None = None,
        cache: Expiring[ExecutionOutcome] | None = None,
        pending: Expiring[LabeledFeedback] | None = None,
    ) -> None:
        """``cache``: execution outcomes by id, for the labels that arrive later; ``pending``:
        label-only feedback waiting for its execution."""
        self.options = options or EngineOptions()
        self.cache = cache or Expiring(100_000, 3600.0)
        self.pending = pending or Expiring(10_000, 600.0)
        self.states: dict[str, WorkerState] = {}
        self.configs: dict[str, TriggerPolicyConfig] = {}
        self.dirty: set[str] = set()
        self.unjudged = 0  # labels that could not be compared with outputs
        self._blocked: list[BlockedBreach] = []
        self._refused: list[InvalidConfig] = []

    # -- configuration -------------------------------------------------------------------
    def set_config(self, worker_id: str, config: TriggerPolicyConfig | None) -> None:
        if config is None:
            self.configs.pop(worker_id, None)
        else:
            self.configs[worker_id] = config
            if worker_id in self.states:
                self.states[worker_id].window.trim(config.window_size)
        log.info("trigger config for %s: %s", worker_id, config)

    def refuse_config(self, invalid: InvalidConfig) -> None:
        """A config record was skipped (the worker keeps its previous config); alerted."""
        self._refused.append(invalid)

    def take_refused_configs(self) -> list[InvalidConfig]:
        taken, self._refused = self._refused, []
        return taken

    def config_for(self, worker_id: str) -> TriggerPolicyConfig | None:
        config = self.configs.get(worker_id)
        if config is None and self.options.default_policy:
            config = TriggerPolicyConfig(worker_id=worker_id, policy=self.options.default_policy)
        return config

    def state(self, worker_id: str) -> WorkerState:
        state = self.states.get(worker_id)
        if state is None:
            state = self.states[worker_id] = WorkerState(worker_id)
        return state

    # -- events --------------------------------------------------------------------------
    def on_execution(
        self, event: ExecutionRecorded, traceparent: str | None, at_ms: int | None = None
    ) -> list[PlannedRequest]:
        execution_id = event.execution_id
        outcome = self.remember_execution(event, traceparent)
        planned: list[PlannedRequest] = []
        if outcome.metric_score is not None:
            planned += self._observe(
                outcome.worker_id,
                execution_id,
                outcome.timestamp_ms,
                score_correct(outcome.metric_score),
                traceparent,
                at_ms,
            )
        waiting = self.pending.take(execution_id)
        if waiting is not None:
            planned += self._judge_label(waiting, outcome, at_ms)
        return planned

    def remember_execution(
        self, event: ExecutionRecorded, traceparent: str | None = None
    ) -> ExecutionOutcome:
        """Cache an execution's outcome (for labels that arrive later) without observing it."""
        outcome = ExecutionOutcome(
            worker_id=event.worker_id,
            outputs_json=event.outputs_json,
            success=event.success,
            metric_score=event.metric_score,
            timestamp_ms=event.timestamp_ms,
            # the SDK writes the registry's version number as text; anything else is no version
            version=int(v) if (v := event.program_version) and v.isdecimal() else None,
            traceparent=traceparent,
        )
        self.cache.put(event.execution_id, outcome)
        return outcome

    def on_feedback(
        self, event: FeedbackRecorded, traceparent: str | None, at_ms: int | None = None
    ) -> list[PlannedRequest]:
        execution_id = event.execution_id
        worker_id = event.worker_id
        timestamp_ms = event.timestamp_ms
        score = event.score
        if score is not None:
            return self._observe(
                worker_id, execution_id, timestamp_ms, score_correct(score), traceparent, at_ms
            )
        label = event.label
        if label is None:
            return []
        feedback = LabeledFeedback(execution_id, worker_id, label, timestamp_ms, traceparent)
        outcome = self.cache.get(execution_id)
        if outcome is None:
            self.pending.put(execution_id, feedback)
            return []
        return self._judge_label(feedback, outcome, at_ms)

    def on_request(self, event: OptimizationRequested) -> None:
        """An OptimizationRequested seen on the topic (ours, manual, or another service's)."""
        worker_id = event.worker_id
        state = self.state(worker_id)
        before = state.last_job_id
        state.record_request(event.job_id, event.timestamp_ms)
        if state.last_job_id != before:
            self.dirty.add(worker_id)

    def on_status(self, event: OptimizationStatusChanged) -> None:
        worker_id, job_id, status = event.worker_id, event.job_id, event.status
        state = self.state(worker_id)
        state.last_status = f"{job_id}:{status}"
        self.dirty.add(worker_id)
        if status in TERMINAL_STATUSES:
            state.finish(job_id)
            if (
                status == "succeeded"
                and self.options.reset_window_on_success
                and (job_id == state.last_job_id)
            ):
                state.window.clear()
                state.breach_streak = 0
                state.breach_since_ms = None
        elif (
            state.in_flight_job_id is None
            and job_id != state.last_job_id
            and job_id not in state.finished_job_ids
        ):
            state.record_request(job_id, event.timestamp_ms)

    # -- clock ---------------------------------------------------------------------------
    def tick(self, at_ms: int | None = None) -> list[PlannedRequest]:
        """Time-driven evaluation: periodic schedules, time windows, debounce-by-seconds."""
        at = now_ms() if at_ms is None else at_ms
        self.pending.expire()
        workers = set(self.states) | set(self.configs)
        planned: list[PlannedRequest] = []
        for worker_id in sorted(workers):
            self._expire_in_flight(worker_id, at)
            planned += self._evaluate(worker_id, at, on_event=False)
        return planned

    def evidence_view(self, worker_id: str, at_ms: int | None = None) -> dict[str, Any]:
        """What ``flywheel trigger show`` and the manager display for one worker."""
        at = now_ms() if at_ms is None else at_ms
        state = self.state(worker_id)
        config = self.config_for(worker_id)
        size = config.window_size if config else DEFAULT_WINDOW
        stats = state.window.stats(size, at, config.window_seconds if config else None)
        cooldown_until = None
        if config and state.last_request_ms is not None:
            cooldown_until = state.last_request_ms + config.cooldown_seconds * 1000
        return {
            "accuracy": stats.accuracy,
            "window_count": stats.count,
            "window_correct": stats.correct,
            "labeled_total": state.labeled_total,
            "new_examples_since_last": state.new_examples,
            "breach_streak": state.breach_streak,
            "in_flight_job_id": state.in_flight_job_id,
            "last_job_id": state.last_job_id,
            "last_request_ms": state.last_request_ms,
            "cooldown_until_ms": cooldown_until,
            "requests_total": state.requests_total,
            "last_status": state.last_status,
            "note": state.note,
            "config": config.to_record() if config else None,
        }

    # -- internals -----------------------------------------------------------------------
    def _judge_label(
        self, feedback: LabeledFeedback, outcome: ExecutionOutcome, at_ms: int | None
    ) -> list[PlannedRequest]:
        verdict = label_matches(feedback.label, outcome.outputs_json)
        if verdict is None:
            self.unjudged += 1
            log.debug("cannot judge label for execution %s", feedback.execution_id)
            return []
        return self._observe(
            feedback.worker_id,
            feedback.execution_id,
            feedback.timestamp_ms,
            verdict,
            feedback.traceparent,
            at_ms,
        )

    def _observe(
        self,
        worker_id: str,
        execution_id: str,
        timestamp_ms: int,
        correct: bool,
        traceparent: str | None,
        at_ms: int | None,
    ) -> list[PlannedRequest]:
        state = self.state(worker_id)
        config = self.config_for(worker_id)
        size = config.window_size if config else DEFAULT_WINDOW
        if state.window.add(Observation(execution_id, timestamp_ms, correct), size):
            state.labeled_total += 1
        served = self.cache.get(execution_id)
        trigger_metrics.observe(worker_id, served.version if served else None, correct)
        state.last_traceparent = traceparent
        self.dirty.add(worker_id)
        return self._evaluate(worker_id, now_ms() if at_ms is None else at_ms, on_event=True)

    def _evaluate(self, worker_id: str, at: int, *, on_event: bool) -> list[PlannedRequest]:
        state = self.state(worker_id)
        config = self.config_for(worker_id)
        before = (state.note, state.breach_streak, state.periodic_anchor_ms)
        try:
            decision = evaluate(state, config, at, self.options.debounce, on_event=on_event)
        except ValueError as exc:  # a config it cannot apply: refused when read, kept as a guard
            log.error("%s: trigger config cannot be evaluated, skipped: %s", worker_id, exc)
            return []
        if before != (state.note, state.breach_streak, state.periodic_anchor_ms):
            self.dirty.add(worker_id)
        if isinstance(decision, Blocked):
            self._report_blocked(state, decision, at)
            return []
        if decision is None or config is None:
            return []
        return [self._plan(state, config, decision, at)]

    def _report_blocked(self, state: WorkerState, blocked: Blocked, at: int) -> None:
        if state.blocked_alerted or state.last_job_id is None:
            return  # before any request, too few examples is still "waiting for data"
        state.blocked_alerted = True
        self.dirty.add(state.worker_id)
        log.warning("%s: accuracy below threshold, no request (%s)", state.worker_id, blocked.why)
        self._blocked.append(
            BlockedBreach(
                state.worker_id,
                blocked.why,
                blocked.evidence,
                state.last_job_id,
                state.last_status,
                state.last_traceparent,
                at,
            )
        )

    def take_blocked(self) -> list[BlockedBreach]:
        """Blocked breaches found since the last call (the service turns them into alerts)."""
        taken, self._blocked = self._blocked, []
        return taken

    def _plan(
        self, state: WorkerState, config: TriggerPolicyConfig, decision: Decision, at: int
    ) -> PlannedRequest:
        job_id = new_id()
        parent = state.last_traceparent if decision.reason == "performance" else None
        state.record_request(job_id, at)
        self.dirty.add(state.worker_id)
        log.info(
            "requesting optimization of %s (%s): job %s, evidence %s",
            state.worker_id,
            decision.reason,
            job_id,
            decision.evidence,
        )
        return PlannedRequest(
            job_id,
            state.worker_id,
            decision.reason,
            decision.evidence,
            config,
            parent,
            at,
            self._window_traces(state, config) if decision.reason == "performance" else (),
        )

    def _window_traces(self, state: WorkerState, config: TriggerPolicyConfig) -> tuple[str, ...]:
        """The traceparents of the calls in the window that decided (still in the cache)."""
        found = (self.cache.get(o.execution_id) for o in state.window.recent(config.window_size))
        return tuple(o.traceparent for o in found if o is not None and o.traceparent)

    def _expire_in_flight(self, worker_id: str, at: int) -> None:
        state = self.states.get(worker_id)
        if state is None or state.in_flight_job_id is None or state.in_flight_since_ms is None:
            return
        if at - state.in_flight_since_ms >= self.options.in_flight_timeout_s * 1000:
            log.warning(
                "job %s for %s in flight for over %.0f s without a final status; "
                "no longer waiting for it",
                state.in_flight_job_id,
                worker_id,
                self.options.in_flight_timeout_s,
            )
            state.in_flight_job_id = None
            state.in_flight_since_ms = None
            self.dirty.add(worker_id)
