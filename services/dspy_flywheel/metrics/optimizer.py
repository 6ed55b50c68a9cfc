"""Optimizer metrics: jobs by state, job duration, LM calls and tokens per job, gate decisions."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from dspy_flywheel.metrics.catalog import Meter

_meter = Meter("optimizer")
jobs = _meter.counter(
    "flywheel.optimizer.jobs",
    "{job}",
    "job status changes, by the state entered (queued, running, succeeded, rejected, ...)",
    ("flywheel.job.state",),
)
job_duration = _meter.histogram(
    "flywheel.optimizer.job.duration",
    "s",
    "wall time of a job from claim to its final state",
    ("flywheel.job.state", "flywheel.optimizer"),
)
job_lm_calls = _meter.histogram(
    "flywheel.optimizer.job.lm_calls",
    "{call}",
    "LM calls one job made (compile and evaluation, counted at the engine)",
    ("flywheel.optimizer",),
)
job_tokens = _meter.histogram(
    "flywheel.optimizer.job.tokens",
    "{token}",
    "LM tokens (prompt + completion) one job used",
    ("flywheel.optimizer",),
)
gate = _meter.counter(
    "flywheel.optimizer.gate.decisions",
    "{decision}",
    "holdout gate outcomes: publish (candidate better) or reject",
    ("flywheel.gate.decision",),
)


FINAL = frozenset({"succeeded", "rejected", "failed", "cancelled"})


def job_state(
    state: str, optimizer: str, started: float, details: Mapping[str, Any] | None
) -> None:
    """A job entered ``state`` (``started``: ``time.monotonic()`` when it was claimed); a final
    state also records its duration and, when known, its LM calls and tokens."""
    jobs.add(1, {"flywheel.job.state": state})
    if state not in FINAL:
        return
    attrs = {"flywheel.optimizer": optimizer}
    job_duration.record(time.monotonic() - started, {**attrs, "flywheel.job.state": state})
    for key, histogram in (("lm_calls", job_lm_calls), ("tokens", job_tokens)):
        value = (details or {}).get(key)
        if isinstance(value, int):
            histogram.record(value, attrs)


def gate_decided(publish: bool) -> None:
    gate.add(1, {"flywheel.gate.decision": "publish" if publish else "reject"})
