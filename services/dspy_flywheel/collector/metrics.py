"""OpenTelemetry instruments of the collector (API only; the entry point installs an SDK)."""

from __future__ import annotations

from opentelemetry import metrics

_meter = metrics.get_meter("dspy_flywheel.collector")

events_in = _meter.create_counter(
    "flywheel.collector.events", unit="{event}", description="events read, by topic kind"
)
examples_stored = _meter.create_counter(
    "flywheel.collector.examples_stored", unit="{example}", description="examples inserted"
)
labels_updated = _meter.create_counter(
    "flywheel.collector.labels_updated", unit="{example}", description="late feedback applied"
)
drops = _meter.create_counter(
    "flywheel.collector.drops", unit="{event}", description="events dropped, by reason"
)
batch_seconds = _meter.create_histogram(
    "flywheel.collector.batch_duration", unit="s", description="time to process one batch"
)
