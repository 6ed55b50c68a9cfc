"""Worker (SDK) metrics: events emitted / sent / spooled / dropped, spool bytes, the version
served, reload latency.

Nothing is recorded on the call path: the counters the emitter keeps anyway are read when a
reader collects (observable instruments over ``Worker.stats()``). Only a reload, which is rare,
records a histogram value.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from typing import Any, Protocol

from opentelemetry.metrics import CallbackOptions, Observation

from dspy_flywheel.metrics.catalog import Meter

log = logging.getLogger(__name__)

WORKER = "flywheel.worker_id"
INSTANCE = "flywheel.instance_id"


class Observed(Protocol):
    worker_id: str
    instance_id: str

    @property
    def version(self) -> int | None: ...

    def stats(self) -> dict[str, Any]: ...


_workers: weakref.WeakSet[Any] = weakref.WeakSet()


def track(worker: Observed) -> None:
    """Report this worker instance's counters until it is garbage collected."""
    _workers.add(worker)


def _stats() -> list[tuple[dict[str, str], dict[str, Any], int | None]]:
    out = []
    for worker in list(_workers):
        try:
            stats = worker.stats()
        except Exception:  # a closing worker: skip it this round
            log.debug("stats of %s unavailable", worker.worker_id, exc_info=True)
            continue
        out.append(
            ({WORKER: worker.worker_id, INSTANCE: worker.instance_id}, stats, worker.version)
        )
    return out


def _field(key: str) -> Any:
    def callback(_: CallbackOptions) -> Iterable[Observation]:
        for attrs, stats, _version in _stats():
            if key in stats:
                yield Observation(int(stats[key]), attrs)

    return callback


_DROP_REASONS = {
    "overflow_dropped": "spool_full",
    "dropped_after_close": "after_close",
    "encode_errors": "encode_error",
}


def _dropped(_: CallbackOptions) -> Iterable[Observation]:
    for attrs, stats, _version in _stats():
        for key, reason in _DROP_REASONS.items():
            if key in stats:
                yield Observation(int(stats[key]), {**attrs, "error.type": reason})


def _version(options: CallbackOptions) -> Iterable[Observation]:
    for attrs, _, version in _stats():
        yield Observation(version or 0, attrs)


_meter = Meter("sdk")
_ids = (WORKER, INSTANCE)
emitted = _meter.observable(
    "counter",
    "flywheel.worker.events.emitted",
    "{event}",
    "events a worker enqueued (executions, feedback, program acks)",
    _field("enqueued"),
    _ids,
)
sent = _meter.observable(
    "counter",
    "flywheel.worker.events.sent",
    "{event}",
    "events the broker acknowledged (direct and replayed from the spool)",
    _field("sent"),
    _ids,
)
spooled = _meter.observable(
    "counter",
    "flywheel.worker.events.spooled",
    "{event}",
    "events written to the on-disk spool (broker down or slow)",
    _field("spooled"),
    _ids,
)
dropped = _meter.observable(
    "counter",
    "flywheel.worker.events.dropped",
    "{event}",
    "events lost: spool full, emitted after close, or not encodable",
    _dropped,
    (*_ids, "error.type"),
)
spool_bytes = _meter.observable(
    "gauge",
    "flywheel.worker.spool.size",
    "By",
    "bytes waiting in the spool for the broker",
    _field("spool_bytes"),
    _ids,
)
serving_version = _meter.observable(
    "gauge",
    "flywheel.worker.program.version",
    "{version}",
    "program version the instance serves (0: the program in its code)",
    _version,
    _ids,
)
reload_duration = _meter.histogram(
    "flywheel.worker.reload.duration",
    "s",
    "time to check, load and swap a published program (hot reload)",
    (WORKER, "flywheel.reload.outcome"),
)


def record_reload(worker_id: str, outcome: str, seconds: float) -> None:
    reload_duration.record(seconds, {WORKER: worker_id, "flywheel.reload.outcome": outcome})


class _Settings(Protocol):
    metrics_port: int | None
    metrics_host: str


class Watched(Observed, Protocol):
    settings: Any


def watch(worker: Watched) -> None:
    """Track ``worker``; with ``FLYWHEEL_WORKER_METRICS_PORT`` set, install the metrics SDK
    (if the process has none) and serve ``/metrics`` there."""
    track(worker)
    settings: _Settings = worker.settings
    if settings.metrics_port:
        from dspy_flywheel.metrics.setup import setup_metrics

        setup_metrics("dspy-flywheel-worker", settings.metrics_port, settings.metrics_host)
