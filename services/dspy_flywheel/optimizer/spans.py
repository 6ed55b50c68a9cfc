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
        _training_span(outcome, ctx)
        span.end(end_time=_ns(compile_times.get("end", end_default)))
    evaluate_times = phases.get("evaluate")
    if evaluate_times and "start" in evaluate_times:
        span = tracer.start_span("optimization.evaluate", start_time=_ns(evaluate_times["start"]))
        evaluated = outcome.last("phase")
        if evaluated and evaluated.get("phase") == "evaluate" and "current" in evaluated:
            span.set_attribute("flywheel.holdout.current", evaluated["current"]["score"])
            span.set_attribute("flywheel.holdout.candidate", evaluated["candidate"]["score"])
        span.end(end_time=_ns(evaluate_times.get("end", end_default)))


def _training_span(outcome: ChildOutcome, ctx: Any) -> None:
    """``optimization.train``: the LoRA trainer's run (BootstrapFinetune), from its reports."""
    reports = [m for m in outcome.messages if m.get("type") == "train"]
    if not reports:
        return
    span = tracer.start_span("optimization.train", context=ctx, start_time=_ns(reports[0]["t"]))
    steps = [m for m in reports if m.get("event") == "step"]
    if steps:
        span.set_attribute("flywheel.train.steps", int(steps[-1]["step"]))
        span.set_attribute("flywheel.train.loss", float(steps[-1]["loss"]))
    last = reports[-1]
    span.set_attribute("flywheel.train.outcome", str(last.get("event")))
    if last.get("event") == "done":
        span.set_attribute("flywheel.train.examples", int(last.get("examples", 0)))
    span.end(end_time=_ns(last["t"]))
