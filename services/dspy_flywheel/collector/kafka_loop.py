"""aiokafka engine: ``getmany`` batches, DB commit, then an explicit offset commit.

The same core as the faust engine without faust's per-message machinery; pick it with
``FLYWHEEL_COLLECTOR_ENGINE=kafka`` when throughput matters more than faust's runtime.
Auto-commit is off; offsets are committed for exactly the records of a batch after
``Collector.process`` returned. A commit that fails on a rebalance only means redelivery.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from dspy_flywheel.bus import batches, open_consumer, stop_consumer
from dspy_flywheel.collector.core import Collector, Prepared
from dspy_flywheel.collector.events import RawMessage
from dspy_flywheel.collector.settings import CollectorSettings

log = logging.getLogger(__name__)


class _Progress(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what is durable: per partition, up to the lowest offset still held in memory."""

    def __init__(self, collector: Collector) -> None:
        self.consumer: AIOKafkaConsumer | None = None
        self._collector = collector
        self._next: dict[TopicPartition, int] = {}  # offset after the last record read
        self._committed: dict[TopicPartition, int] = {}

    def read(self, tp: TopicPartition, last_offset: int) -> None:
        self._next[tp] = last_offset + 1

    async def commit(self) -> None:
        if self.consumer is None:  # revoked while the consumer joins its group: nothing read yet
            return
        held = self._collector.lowest_held_offsets()
        offsets = {}
        for tp, after_last in self._next.items():
            target = held.get((tp.topic, tp.partition), after_last)
            if self._committed.get(tp) != target:
                offsets[tp] = target
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
            self._committed.update(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            log.warning("offset commit failed (%s); those events will be redelivered", exc)

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._collector.until_done(self._collector.flush, "flushing held events")
        await self.commit()
        for tp in revoked:
            self._next.pop(tp, None)
            self._committed.pop(tp, None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("assigned %d partitions", len(assigned))


async def run_kafka(
    settings: CollectorSettings,
    collector: Collector,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
) -> None:
    progress = _Progress(collector)
    group = settings.consumer_group(settings.group_id)
    consumer = await open_consumer(
        settings.kafka,
        settings.source(),
        group_id=group,
        listener=progress,
        max_poll_records=settings.batch_max,
        session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.session_timeout_s * 250),
    )
    progress.consumer = consumer
    log.info("collector (kafka) consuming %s, %s as group %r", *settings.source(), group)
    if ready is not None:
        ready.set()
    writing: asyncio.Task[None] | None = None

    async def write(prepared: Prepared | None, records: dict[TopicPartition, list[Any]]) -> None:
        if prepared is not None:
            await collector.until_done(lambda: collector.write(prepared), "batch")
        elif collector.held:
            await collector.until_done(collector.release_aged, "releasing held events")
        for tp, batch in records.items():
            if batch:
                progress.read(tp, batch[-1].offset)
        await progress.commit()

    try:
        # Two stages: while batch k is written (PostgreSQL works), batch k+1 is fetched and
        # anonymized here. Writes and commits stay in order.
        timeout_ms = int(settings.batch_within_s * 1000)
        async for records in batches(
            consumer, stop, timeout_ms=timeout_ms, max_records=settings.batch_max
        ):
            raws = [
                RawMessage(m.topic, m.partition, m.offset, m.key, m.value, list(m.headers))
                for batch in records.values()
                for m in batch
            ]
            prepared = (
                await collector.until_done(functools.partial(collector.prepare, raws), "prepare")
                if raws
                else None
            )
            if writing is not None:
                await writing
            writing = asyncio.create_task(write(prepared, records))
        if writing is not None:
            await writing
        await collector.until_done(collector.flush, "flushing held events")
        await progress.commit()
    finally:
        await stop_consumer(consumer)
