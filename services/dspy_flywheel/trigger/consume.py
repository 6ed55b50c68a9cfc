"""Re-reading recent executions at start, so labels arriving late can still be judged.

The trigger reads its input topics on every partition, without a consumer group
(``bus.open_consumer`` from the offsets stored in PostgreSQL next to the state they produced:
one active instance per scope holds an advisory lock), so a restart resumes exactly after the
last commit. The executions just before those offsets are re-read here into the cache.
"""

from __future__ import annotations

import logging
import time

from aiokafka import TopicPartition

from dspy_flywheel.bus.consumer import open_consumer, read_range, stop_consumer
from dspy_flywheel.bus.guard import Record
from dspy_flywheel.contracts.codec import DecodeError, decode
from dspy_flywheel.contracts.events import ExecutionRecorded
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.store.offsets import Offsets
from dspy_flywheel.trigger.engine import TriggerEngine

log = logging.getLogger(__name__)


async def warm_execution_cache(
    kafka: KafkaSettings, topic: str, offsets: Offsets, engine: TriggerEngine, ttl_s: float
) -> int:
    """Re-read the executions of the last ``ttl_s`` seconds before the stored offsets."""
    resume = {TopicPartition(t, p): off for (t, p), off in offsets.items() if t == topic and off}
    if not resume:
        return 0
    loaded = 0

    async def remember(record: Record) -> None:
        nonlocal loaded
        if record.offset >= resume[TopicPartition(record.topic, record.partition)]:
            return  # handled after the restart, from the stored offsets
        try:
            decoded = decode(record.value, record.headers)
        except DecodeError:
            return
        if isinstance(decoded.event, ExecutionRecorded):
            engine.remember_execution(decoded.event, decoded.traceparent)
            loaded += 1

    consumer = await open_consumer(kafka, [topic], fetch_max_wait_ms=10)
    try:
        since = int((time.time() - ttl_s) * 1000)
        starts = await consumer.offsets_for_times({tp: since for tp in resume})
        ends = {}
        for tp, found in starts.items():
            if found is not None and found.offset < resume[tp]:
                consumer.seek(tp, found.offset)
                ends[tp] = resume[tp]
        await read_range(consumer, ends, remember, until_idle=True)
    finally:
        await stop_consumer(consumer)
    log.info("warmed the execution cache with %d recent executions", loaded)
    return loaded
