"""The trigger's processing core: feed each record of a batch to the engine (under the bus's
record guard: a bad execution or feedback goes to its DLQ), persist, hand off requests
(and ``Alert``s on the alerts topic: one with each performance request, one when a breach can't
become a request because of the cooldown or too few new examples).

Each consumed batch and each clock tick ends in ONE PostgreSQL transaction holding the changed
worker states, the next offsets and any new requests (outbox). A crash therefore resumes from a
consistent point: state and offsets agree, and a request is never decided twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dspy_flywheel.bus import OutboxEvent, RecordGuard, retrying
from dspy_flywheel.contracts.codec import Decoded
from dspy_flywheel.contracts.events import (
    Alert,
    ExecutionRecorded,
    FeedbackRecorded,
    OptimizationRequested,
    OptimizationStatusChanged,
)
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.metrics import trigger as trigger_metrics
from dspy_flywheel.store.offsets import Offsets
from dspy_flywheel.store.stateful import BatchService
from dspy_flywheel.trigger.engine import PlannedRequest, TriggerEngine
from dspy_flywheel.trigger.requests import (
    blocked_alert,
    degradation_alert,
    envelope_for,
    invalid_config_alert,
)
from dspy_flywheel.trigger.store import OutboxRow, TriggerStore

log = logging.getLogger(__name__)


class TriggerService(BatchService[PlannedRequest]):
    # executions first (labels need outputs), requests before the statuses that end them
    ORDER = ("executions", "optimization_requests", "optimization_status", "feedback")

    def __init__(
        self,
        engine: TriggerEngine,
        store: TriggerStore,
        guard: RecordGuard[Decoded],
        topics: Topics,
        wake_relay: Callable[[], None],
    ) -> None:
        super().__init__(guard, topics, wake_relay)
        self.engine = engine
        self.store = store
        self._saved_views: dict[str, dict[str, Any]] = {}

    async def tick(self) -> None:
        async with self._lock:
            await self._commit(self.engine.tick(), {}, all_views=True)

    async def _handle(self, decoded: Decoded) -> list[PlannedRequest]:
        event = decoded.event
        if isinstance(event, ExecutionRecorded):
            return self.engine.on_execution(event, decoded.traceparent)
        if isinstance(event, FeedbackRecorded):
            return self.engine.on_feedback(event, decoded.traceparent)
        if isinstance(event, OptimizationRequested):
            self.engine.on_request(event)
        elif isinstance(event, OptimizationStatusChanged):
            self.engine.on_status(event)
        else:
            log.debug("ignoring %s", event.event_type)
        return []

    async def _commit(
        self, planned: list[PlannedRequest], offsets: Offsets, *, all_views: bool = False
    ) -> None:
        topics = self.topics
        outbox: list[OutboxRow] = []
        for request in planned:
            envelope = envelope_for(request)
            outbox.append(OutboxRow(topics.optimization_requests, envelope))
            if request.reason == "performance":
                outbox.append(OutboxRow(topics.alerts, degradation_alert(request, envelope)))
        for breach in self.engine.take_blocked():
            outbox.append(OutboxRow(topics.alerts, blocked_alert(breach)))
        for invalid in self.engine.take_refused_configs():
            outbox.append(OutboxRow(topics.alerts, invalid_config_alert(invalid, self.store.scope)))
        workers = set(self.engine.states) if all_views else set(self.engine.dirty)
        changed: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        for worker_id in workers:
            view = self.engine.evidence_view(worker_id)
            if worker_id in self.engine.dirty or view != self._saved_views.get(worker_id):
                changed[worker_id] = (self.engine.states[worker_id].to_json(), view)
        if changed or offsets or outbox:
            await retrying(
                lambda: self.store.save(changed, offsets, outbox), "saving trigger state"
            )
        for worker_id, (_, view) in changed.items():
            self._saved_views[worker_id] = view
        self.engine.dirty.clear()
        if outbox:
            self.wake_relay()


def log_published(sent: OutboxEvent) -> None:
    """What the relay reports (log and metrics) for each event it published."""
    event = sent.event
    if not isinstance(event, Alert | OptimizationRequested):
        return
    trigger_metrics.note_published(event)
    if isinstance(event, Alert):
        log.warning("published alert: %s", event.message)
    else:
        log.info(
            "published optimization request %s for %s (%s)",
            event.job_id,
            event.worker_id,
            event.reason,
        )
