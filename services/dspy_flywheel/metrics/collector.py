"""Collector metrics: events processed, rows stored, drops, PII values removed, batch time."""

from __future__ import annotations

from collections.abc import Mapping

from dspy_flywheel.metrics.catalog import Meter

_meter = Meter("collector")
events_in = _meter.counter(
    "flywheel.collector.events.processed",
    "{event}",
    "execution and feedback events the collector processed",
    ("flywheel.event_type",),
)
examples_stored = _meter.counter(
    "flywheel.collector.rows.stored", "{row}", "training examples inserted into PostgreSQL"
)
labels_updated = _meter.counter(
    "flywheel.collector.labels.updated", "{row}", "stored examples updated by late feedback"
)
drops = _meter.counter(
    "flywheel.collector.events.dropped",
    "{event}",
    "events filtered out by the worker's collection policy, by reason",
    ("flywheel.worker_id", "flywheel.drop.reason"),
)
batch_seconds = _meter.histogram(
    "flywheel.collector.batch.duration", "s", "time to anonymize, encrypt and store one batch"
)
pii_removed = _meter.counter(
    "flywheel.collector.pii.removed",
    "{value}",
    "PII values replaced by placeholders before storage, by kind",
    ("flywheel.pii.kind",),
)


def note_pii(counts_by_kind: Mapping[str, int]) -> None:
    for kind, n in counts_by_kind.items():
        pii_removed.add(n, {"flywheel.pii.kind": kind})
