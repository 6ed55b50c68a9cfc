"""Trigger metrics: rolling accuracy per worker and program version, requests, alerts.

The accuracy gauge keeps its own window per (worker, version), so a version's accuracy is not
mixed with its predecessor's even while the trigger's own window (per worker) still holds both.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Observation

from dspy_flywheel.contracts.events import Alert, OptimizationRequested
from dspy_flywheel.metrics.catalog import Meter

WINDOW = 100  # labeled calls per (worker, version)
_MAX_SERIES = 1000  # (worker, version) pairs kept; the oldest go first

_windows: dict[tuple[str, int], deque[bool]] = {}
_lock = threading.Lock()


def observe(worker_id: str, version: int | None, correct: bool) -> None:
    """One labeled call of ``worker_id`` served by ``version`` (None: the code's program)."""
    key = (worker_id, version or 0)
    with _lock:
        window = _windows.get(key)
        if window is None:
            if len(_windows) >= _MAX_SERIES:
                del _windows[next(iter(_windows))]
            window = _windows[key] = deque(maxlen=WINDOW)
        window.append(correct)


def _accuracy(_: CallbackOptions) -> Iterable[Observation]:
    with _lock:
        items = [(k, sum(w) / len(w)) for k, w in _windows.items() if w]
    for (worker_id, version), accuracy in items:
        yield Observation(
            accuracy, {"flywheel.worker_id": worker_id, "flywheel.program.version": version}
        )


_meter = Meter("trigger")
accuracy = _meter.observable(
    "gauge",
    "flywheel.trigger.accuracy",
    "1",
    f"rolling accuracy over the last {WINDOW} labeled calls, per worker and program version",
    _accuracy,
    ("flywheel.worker_id", "flywheel.program.version"),
)
requests = _meter.counter(
    "flywheel.trigger.requests",
    "{request}",
    "optimization requests the trigger published, by reason",
    ("flywheel.worker_id", "flywheel.reason"),
)
alerts = _meter.counter(
    "flywheel.trigger.alerts",
    "{alert}",
    "alerts the trigger published, by kind",
    ("flywheel.worker_id", "flywheel.alert.kind"),
)


def note_published(event: Alert | OptimizationRequested) -> None:
    """A request or alert left the trigger's outbox."""
    worker = {"flywheel.worker_id": event.worker_id or ""}
    if isinstance(event, Alert):
        alerts.add(1, {**worker, "flywheel.alert.kind": event.kind})
    else:
        requests.add(1, {**worker, "flywheel.reason": event.reason})
