"""The trigger's processing core: decode batches, feed the engine, persist, hand off requests
(and ``Alert``s on the alerts topic: one with each performance request, one when a breach can't
become a request because of the cooldown or too few new examples).

Each consumed batch and each clock tick ends in ONE PostgreSQL transaction holding the changed
worker states, the next offsets and any new requests (outbox). A crash therefore resumes from a
consistent point: state and offsets agree, and a request is never decided twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from dspy_flywheel.contracts.codec import DecodeError, decode
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.trigger.engine import PlannedRequest, TriggerEngine
from dspy_flywheel.trigger.requests import (
    blocked_alert,
    degradation_alert,
    envelope_for,
    send_envelope,
)
from dspy_flywheel.trigger.store import Offsets, OutboxRow, TriggerStore

log = logging.getLogger(__name__)

Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
_BAD_RECORD = (DecodeError, KeyError, TypeError, ValueError)


class TriggerService:
    def __init__(
        self,
        engine: TriggerEngine,
        store: TriggerStore,
        producer: AIOKafkaProducer,
        topics: Topics,
    ) -> None:
        self.engine = engine
        self.store = store
        self.producer = producer
        self.topics = topics
        self.requested = asyncio.Event()  # wakes the outbox relay
        self._lock = asyncio.Lock()
        self._saved_views: dict[str, dict[str, Any]] = {}
        # executions first (labels need outputs), requests before the statuses that end them
        self._order = [
            topics.executions,
            topics.optimization_requests,
            topics.optimization_status,
            topics.feedback,
        ]

    @property
    def topic_names(self) -> list[str]:
        return list(self._order)

    async def handle_batch(self, batch: Batch) -> None:
        async with self._lock:
            planned: list[PlannedRequest] = []
            offsets: Offsets = {}
            rank = {t: i for i, t in enumerate(self._order)}
            for tp in sorted(batch, key=lambda tp: (rank.get(tp.topic, 99), tp.partition)):
                for record in batch[tp]:
                    planned += await self._handle(record)
                    offsets[(tp.topic, tp.partition)] = record.offset + 1
            await self._commit(planned, offsets, all_views=False)

    async def tick(self) -> None:
        async with self._lock:
            await self._commit(self.engine.tick(), {}, all_views=True)

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> list[PlannedRequest]:
        try:
            event = decode(record.value, record.headers)
            body = event.record
            if event.event_type == "ExecutionRecorded":
                return self.engine.on_execution(body, event.traceparent)
            if event.event_type == "FeedbackRecorded":
                return self.engine.on_feedback(body, event.traceparent)
            if event.event_type == "OptimizationRequested":
                self.engine.on_request(body)
            elif event.event_type == "OptimizationStatusChanged":
                self.engine.on_status(body)
            else:
                log.debug("ignoring %s on %s", event.event_type, record.topic)
        except _BAD_RECORD as exc:
            await self._dead_letter(record, exc)
        return []

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], exc: Exception) -> None:
        if record.topic not in (self.topics.executions, self.topics.feedback):
            log.warning(
                "skipping bad record %s[%d]@%d: %s",
                record.topic,
                record.partition,
                record.offset,
                exc,
            )
            return
        log.warning(
            "dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc
        )
        headers = [
            *record.headers,
            ("dlq_error", f"{type(exc).__name__}: {exc}".encode()[:1000]),
            ("dlq_retriable", str(bool(getattr(exc, "retriable", False))).lower().encode()),
            ("dlq_source", f"{record.topic}:{record.partition}:{record.offset}".encode()),
            ("dlq_consumer", b"trigger"),
        ]
        await self.producer.send_and_wait(
            self.topics.dlq(record.topic), record.value, key=record.key, headers=headers
        )

    async def _commit(
        self, planned: list[PlannedRequest], offsets: Offsets, *, all_views: bool
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
        workers = set(self.engine.states) if all_views else set(self.engine.dirty)
        changed: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        for worker_id in workers:
            view = self.engine.evidence_view(worker_id)
            if worker_id in self.engine.dirty or view != self._saved_views.get(worker_id):
                changed[worker_id] = (self.engine.states[worker_id].to_json(), view)
        if changed or offsets or outbox:
            await self.store.save(changed, offsets, outbox)
        for worker_id, (_, view) in changed.items():
            self._saved_views[worker_id] = view
        self.engine.dirty.clear()
        if outbox:
            self.requested.set()


class OutboxRelay:
    """Publishes outbox rows in order and marks them sent (at-least-once, same event/job id)."""

    def __init__(
        self,
        store: TriggerStore,
        producer: AIOKafkaProducer,
        wakeup: asyncio.Event,
        poll_s: float = 1.0,
    ) -> None:
        self.store = store
        self.producer = producer
        self.wakeup = wakeup
        self.poll_s = poll_s
        self.sent = 0

    async def run(self) -> None:
        while True:
            self.wakeup.clear()
            try:
                await self.flush()
            except (KafkaError, OSError) as exc:
                log.warning("outbox relay: publish failed, retrying: %r", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), self.poll_s)

    async def flush(self) -> int:
        """Publish every unsent row now; return how many went out."""
        count = 0
        for row in await self.store.unsent():
            await send_envelope(self.producer, row.topic, row.envelope)
            await self.store.mark_sent(row.envelope.event_id)
            count += 1
            if row.envelope.event_type == "Alert":
                log.warning("published alert: %s", row.envelope.record.get("message"))
            else:
                log.info(
                    "published optimization request %s for %s (%s)",
                    row.envelope.job_id,
                    row.envelope.worker_id,
                    row.envelope.record.get("reason"),
                )
        self.sent += count
        return count
