"""Follows the optimization lifecycle on Kafka: requests, job status, program updates, acks."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from dspy_flywheel.bus import batches, ensure_topics, open_consumer, stop_consumer
from dspy_flywheel.contracts import (
    Alert,
    DecodeError,
    Event,
    OptimizationRequested,
    OptimizationStatusChanged,
    ProgramAcknowledged,
    ProgramUpdated,
    RolloutChanged,
    Topics,
    decode,
)
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.telemetry import trace_id_of

log = logging.getLogger(__name__)


@dataclass
class Lifecycle:
    worker_id: str
    request: OptimizationRequested | None = None
    trace_id: str | None = None
    job_id: str | None = None
    status: str | None = None
    progress: float | None = None
    message: str | None = None
    status_times: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    published: ProgramUpdated | None = None
    serving_version: int | None = None
    alert: Alert | None = None  # the first Alert for this worker
    rollouts: list[RolloutChanged] = field(default_factory=list)  # in order

    def apply(self, event: Event, traceparent: str | None) -> None:
        if getattr(event, "worker_id", None) != self.worker_id:
            return
        now = time.monotonic()
        if isinstance(event, OptimizationRequested) and self.request is None:
            self.request = event
            self.job_id = event.job_id
            self.trace_id = trace_id_of(traceparent)
        elif isinstance(event, OptimizationStatusChanged) and event.job_id == self.job_id:
            self.status, self.progress = event.status, event.progress
            self.message = event.message
            self.status_times.setdefault(event.status, now)
            # statuses carry different details (the split early, costs at the end): keep all
            self.details = {**self.details, **json.loads(event.details_json or "{}")}
        elif isinstance(event, Alert) and self.alert is None:
            self.alert = event
        elif isinstance(event, RolloutChanged):
            self.rollouts.append(event)
        elif isinstance(event, ProgramUpdated) and event.job_id == self.job_id:
            self.published = event
        elif (
            isinstance(event, ProgramAcknowledged)
            and event.status == "serving"
            and self.published
            and event.version == self.published.version
        ):
            self.serving_version = event.version

    def decision(self, *names: str) -> RolloutChanged | None:
        """The latest rollout decision among ``names`` (any decision when none are named)."""
        found = [r for r in self.rollouts if not names or r.decision in names]
        return found[-1] if found else None


async def follow(
    kafka: KafkaSettings, topics: Topics, lifecycle: Lifecycle, stop: asyncio.Event
) -> None:
    await ensure_topics(kafka, topics)  # subscribed before they exist, it might see nothing
    watched = [
        topics.optimization_requests,
        topics.optimization_status,
        topics.program_updated,
        topics.program_acks,
        topics.program_rollouts,
        topics.alerts,
    ]
    consumer = await open_consumer(kafka, watched)
    try:
        async for batch in batches(consumer, stop, timeout_ms=300):
            for messages in batch.values():
                for msg in messages:
                    try:
                        event = decode(msg.value, msg.headers)
                    except DecodeError as exc:
                        log.warning("demo watcher skipped an undecodable event: %s", exc)
                        continue
                    lifecycle.apply(event.event, event.traceparent)
    finally:
        await stop_consumer(consumer)
