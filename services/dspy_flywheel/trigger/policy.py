"""Pure trigger decisions: given a worker's state, its config and the time, request or not.

Guards against storms, in this order:
- one in-flight job per worker (until its status is terminal, or ``in_flight_timeout`` passes);
- performance: accuracy < threshold with >= ``min_examples`` labeled in the window, held for
  ``debounce_evaluations`` consecutive labeled events (or ``debounce_seconds``), then
  ``cooldown_seconds`` since the last request and ``min_new_examples`` labeled since it;
- periodic: ``interval_seconds`` or ``cron`` since the last request/anchor; a slot that is blocked
  (job in flight, too few new examples) is skipped, not queued.

A debounced breach that the cooldown or ``min_new_examples`` keeps from becoming a request is
returned as :class:`Blocked` (the engine alerts on it once per breach, once the worker had a
request); a job in flight is not: the alert of its own request covers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dspy_flywheel.trigger.config import TriggerPolicyConfig
from dspy_flywheel.trigger.cron import next_fire_ms
from dspy_flywheel.trigger.state import WindowStats, WorkerState


@dataclass(frozen=True)
class Debounce:
    evaluations: int = 2
    seconds: float | None = None


@dataclass(frozen=True)
class Blocked:
    """Accuracy is below the threshold (debounced), but no request may go out yet."""

    why: str  # e.g. "cooldown until 2026-11-26T07:40:00Z"
    evidence: dict[str, Any]

    @property
    def note(self) -> str:
        return f"blocked: {self.why}"


@dataclass(frozen=True)
class Decision:
    reason: str  # performance | periodic
    evidence: dict[str, Any]


def window_stats(state: WorkerState, config: TriggerPolicyConfig, now_ms: int) -> WindowStats:
    return state.window.stats(config.window_size, now_ms, config.window_seconds)


def evidence_of(
    state: WorkerState, config: TriggerPolicyConfig, stats: WindowStats, now_ms: int
) -> dict[str, Any]:
    return {
        "accuracy": stats.accuracy,
        "window_count": stats.count,
        "window_correct": stats.correct,
        "window_size": config.window_size,
        "window_seconds": config.window_seconds,
        "window_oldest_ms": stats.oldest_ms,
        "window_newest_ms": stats.newest_ms,
        "threshold": config.threshold,
        "min_examples": config.min_examples,
        "min_new_examples": config.min_new_examples,
        "new_examples_since_last": state.new_examples,
        "labeled_total": state.labeled_total,
        "cooldown_seconds": config.cooldown_seconds,
        "last_request_ms": state.last_request_ms,
        "breach_streak": state.breach_streak,
        "evaluated_at_ms": now_ms,
    }


def _track_breach(state: WorkerState, breached: bool, on_event: bool, now_ms: int) -> None:
    if not breached:
        state.breach_streak = 0
        state.breach_since_ms = None
        state.blocked_alerted = False  # recovered: a later blocked breach is a new one
        return
    if state.breach_since_ms is None:
        state.breach_since_ms = now_ms
    if on_event:
        state.breach_streak += 1


def _debounced(state: WorkerState, debounce: Debounce, now_ms: int) -> bool:
    if state.breach_streak >= debounce.evaluations:
        return True
    since = state.breach_since_ms
    return (
        debounce.seconds is not None
        and since is not None
        and (now_ms - since >= debounce.seconds * 1000)
    )


def _performance(
    state: WorkerState, config: TriggerPolicyConfig, now_ms: int, debounce: Debounce, on_event: bool
) -> Decision | Blocked | str:
    stats = window_stats(state, config, now_ms)
    accuracy = stats.accuracy
    breached = (
        stats.count >= config.min_examples and accuracy is not None and accuracy < config.threshold
    )
    _track_breach(state, breached, on_event, now_ms)
    if not breached:
        if stats.count < config.min_examples:
            return f"waiting: {stats.count}/{config.min_examples} labeled in window"
        return f"ok: accuracy {accuracy:.3f} >= {config.threshold}"
    if not _debounced(state, debounce, now_ms):
        return f"debouncing: accuracy {accuracy:.3f} low for {state.breach_streak} evaluation(s)"
    if state.in_flight_job_id is not None:
        return f"blocked: job {state.in_flight_job_id} in flight"
    evidence = evidence_of(state, config, stats, now_ms)
    if state.last_request_ms is not None:
        until = state.last_request_ms + config.cooldown_seconds * 1000
        if now_ms < until:
            stamp = datetime.fromtimestamp(until / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return Blocked(f"cooldown until {stamp}", {**evidence, "cooldown_until_ms": until})
    if state.new_examples < config.min_new_examples:
        why = f"{state.new_examples}/{config.min_new_examples} new examples since the last request"
        return Blocked(why, evidence)
    return Decision("performance", evidence)


def _periodic(state: WorkerState, config: TriggerPolicyConfig, now_ms: int) -> Decision | str:
    interval, cron = config.interval_seconds, config.cron
    if interval is None and cron is None:  # below: one of them is set
        return "periodic: no interval or cron set"
    if state.periodic_anchor_ms is None:
        state.periodic_anchor_ms = now_ms
    anchor = state.periodic_anchor_ms
    due = anchor + interval * 1000 if interval is not None else next_fire_ms(cron or "", anchor)
    if now_ms < due:
        return f"periodic: next at {due} ms"
    blocked = None
    if state.in_flight_job_id is not None:
        blocked = f"job {state.in_flight_job_id} in flight"
    elif state.new_examples < config.min_new_examples:
        blocked = f"{state.new_examples}/{config.min_new_examples} new examples"
    if blocked:
        state.periodic_anchor_ms = now_ms
        return f"periodic slot skipped: {blocked}"
    stats = window_stats(state, config, now_ms)
    evidence = evidence_of(state, config, stats, now_ms)
    evidence.update(interval_seconds=config.interval_seconds, cron=config.cron, due_ms=due)
    return Decision("periodic", evidence)


def evaluate(
    state: WorkerState,
    config: TriggerPolicyConfig | None,
    now_ms: int,
    debounce: Debounce,
    *,
    on_event: bool = False,
) -> Decision | Blocked | None:
    """Decide for one worker; updates the debounce/periodic bookkeeping and ``state.note``.

    ``on_event`` is True when a new labeled outcome was just added (it counts toward the
    consecutive-evaluations debounce; clock ticks do not). A ``Blocked`` is returned only when
    no periodic request goes out either.
    """
    if config is None:
        state.note = "no trigger config"
        return None
    if not config.enabled:
        state.note = "disabled"
        return None
    policies = config.policies
    notes = []
    blocked = None
    if "performance" in policies:
        result = _performance(state, config, now_ms, debounce, on_event)
        if isinstance(result, Decision):
            state.note = "requested: performance"
            return result
        if isinstance(result, Blocked):
            blocked = result
        notes.append(result.note if isinstance(result, Blocked) else result)
    if "periodic" in policies:
        result_p = _periodic(state, config, now_ms)
        if isinstance(result_p, Decision):
            state.note = "requested: periodic"
            return result_p
        notes.append(result_p)
    if policies == {"manual"}:
        notes.append("manual only")
    state.note = "; ".join(notes)
    return blocked
