"""aiokafka engine: ``getmany`` batches, DB commit, then an explicit offset commit.

The same core as the faust engine without faust's per-message machinery; pick it with
``FLYWHEEL_COLLECTOR_ENGINE=kafka`` when throughput matters more than faust's runtime.
Auto-commit is off; offsets are committed for exactly the records of a batch after
``Collector.process`` returned. A commit that fails on a rebalance only means redelivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from dspy_flywheel.collector.core import Collector
from dspy_flywheel.collector.events import RawMessage
from dspy_flywheel.collector.jobs import apply_retention, expire_pending
from dspy_flywheel.collector.policy import PolicyBook
from dspy_flywheel.collector.settings import CollectorSettings

log = logging.getLogger(__name__)


async def _every(seconds: float, name: str, job: Callable[[], Awaitable[Any]]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception:
            log.exception("%s failed", name)


async def run_kafka(
    settings: CollectorSettings,
    collector: Collector,
    pool: Any,
    policies: PolicyBook,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
) -> None:
    topics = settings.topics
    consumer = AIOKafkaConsumer(
        topics.executions, topics.feedback,
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.batch_max,
        **settings.kafka.client_kwargs(),
    )
    await consumer.start()
    jobs = [
        asyncio.create_task(_every(settings.expiry_interval_s, "expiry",
                                   lambda: expire_pending(pool))),
        asyncio.create_task(_every(settings.retention_interval_s, "retention",
                                   lambda: apply_retention(pool, policies,
                                                           settings.processed_ttl_h))),
    ]
    log.info("collector (kafka) consuming %s, %s as group %r",
             topics.executions, topics.feedback, settings.group_id)
    if ready is not None:
        ready.set()
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            fetch = asyncio.ensure_future(consumer.getmany(
                timeout_ms=int(settings.batch_within_s * 1000), max_records=settings.batch_max))
            await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not fetch.done():
                fetch.cancel()
                break
            records = fetch.result()
            raws = [RawMessage(m.topic, m.partition, m.offset, m.key, m.value, list(m.headers))
                    for batch in records.values() for m in batch]
            if not raws:
                continue
            await collector.process_until_done(raws)
            offsets = {TopicPartition(tp.topic, tp.partition): batch[-1].offset + 1
                       for tp, batch in records.items() if batch}
            try:
                await consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError, KafkaError) as exc:
                log.warning("offset commit failed (%s); the batch will be redelivered", exc)
    finally:
        stopping.cancel()
        for task in jobs:
            task.cancel()
        for task in jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await consumer.stop()
