"""Spans for the work the compile child did, rebuilt in the parent from its timed reports.

The child does not export telemetry itself; it reports phase and trial times, and the parent
records ``optimization.compile`` (with one ``optimization.trial`` per scored candidate) and
``optimization.evaluate`` as children of the current (job) span.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace

from dspy_flywheel.optimizer.runner import ChildOutcome
from dspy_flywheel.telemetry import tracer


def _ns(t: Any) -> int:
    return int(float(t) * 1e9)


def child_spans(outcome: ChildOutcome) -> None:
    """compile / trial / evaluate spans from the child's timed reports."""
    phases: dict[str, dict[str, float]] = {}
    for m in outcome.messages:
        if m.get("type") == "phase":
            phases.setdefault(str(m["phase"]), {})[str(m["event"])] = float(m["t"])
    end_default = time.time()
    compile_times = phases.get("compile")
    if compile_times and "start" in compile_times:
        span = tracer.start_span("optimization.compile", start_time=_ns(compile_times["start"]))
        span.set_attribute("flywheel.outcome", outcome.kind)
        ctx = trace.set_span_in_context(span)
        previous = compile_times["start"]
        for m in (m for m in outcome.messages if m.get("type") == "trial"):
            trial = tracer.start_span("optimization.trial", context=ctx, start_time=_ns(previous))
            trial.set_attribute("flywheel.trial", int(m["n"]))
            if m.get("score") is not None:
                trial.set_attribute("flywheel.score", float(m["score"]))
            trial.end(end_time=_ns(m["t"]))
            previous = float(m["t"])
        span.end(end_time=_ns(compile_times.get("end", end_default)))
    evaluate_times = phases.get("evaluate")
    if evaluate_times and "start" in evaluate_times:
        span = tracer.start_span("optimization.evaluate", start_time=_ns(evaluate_times["start"]))
        evaluated = outcome.last("phase")
        if evaluated and evaluated.get("phase") == "evaluate" and "current" in evaluated:
            span.set_attribute("flywheel.holdout.current", evaluated["current"]["score"])
            span.set_attribute("flywheel.holdout.candidate", evaluated["candidate"]["score"])
        span.end(end_time=_ns(evaluate_times.get("end", end_default)))
