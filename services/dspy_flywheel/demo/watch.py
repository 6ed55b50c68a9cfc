"""Follows the optimization lifecycle on Kafka: requests, job status, program updates, acks."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer

from dspy_flywheel.bus.admin import ensure_topics
from dspy_flywheel.contracts import DecodeError, Topics, decode
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.telemetry import trace_id_of

log = logging.getLogger(__name__)


@dataclass
class Lifecycle:
    worker_id: str
    requested_at: float | None = None
    request: dict[str, Any] | None = None
    trace_id: str | None = None
    job_id: str | None = None
    status: str | None = None
    progress: float | None = None
    message: str | None = None
    status_times: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    published: dict[str, Any] | None = None
    published_at: float | None = None
    serving_version: int | None = None
    serving_at: float | None = None
    alert: dict[str, Any] | None = None  # the first Alert for this worker
    rollouts: list[dict[str, Any]] = field(default_factory=list)  # RolloutChanged, in order

    def apply(self, event_type: str, record: dict[str, Any], traceparent: str | None) -> None:
        if record.get("worker_id") != self.worker_id:
            return
        now = time.monotonic()
        if event_type == "OptimizationRequested" and self.request is None:
            self.request, self.requested_at = record, now
            self.job_id = record["job_id"]
            self.trace_id = trace_id_of(traceparent)
        elif event_type == "OptimizationStatusChanged" and record["job_id"] == self.job_id:
            self.status, self.progress = record["status"], record.get("progress")
            self.message = record.get("message")
            self.status_times.setdefault(record["status"], now)
            # statuses carry different details (the split early, costs at the end): keep all
            self.details = {**self.details, **json.loads(record.get("details_json") or "{}")}
        elif event_type == "Alert" and self.alert is None:
            self.alert = record
        elif event_type == "RolloutChanged":
            self.rollouts.append({**record, "seen_at": now})
        elif event_type == "ProgramUpdated" and record.get("job_id") == self.job_id:
            self.published, self.published_at = record, now
        elif (
            event_type == "ProgramAcknowledged"
            and record["status"] == "serving"
            and self.published
            and record.get("version") == self.published["version"]
        ):
            self.serving_version, self.serving_at = record["version"], now

    def decision(self, *names: str) -> dict[str, Any] | None:
        """The latest rollout decision among ``names`` (any decision when none are named)."""
        found = [r for r in self.rollouts if not names or r["decision"] in names]
        return found[-1] if found else None


async def follow(
    kafka: KafkaSettings, topics: Topics, lifecycle: Lifecycle, stop: asyncio.Event
) -> None:
    await ensure_topics(kafka, topics)  # subscribed before they exist, it might see nothing
    consumer = AIOKafkaConsumer(
        topics.optimization_requests,
        topics.optimization_status,
        topics.program_updated,
        topics.program_acks,
        topics.program_rollouts,
        topics.alerts,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **kafka.client_kwargs(),
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=300)
            for messages in batches.values():
                for msg in messages:
                    try:
                        event = decode(msg.value, msg.headers)
                    except DecodeError as exc:
                        log.warning("demo watcher skipped an undecodable event: %s", exc)
                        continue
                    lifecycle.apply(event.event_type, event.record, event.traceparent)
    finally:
        await consumer.stop()
