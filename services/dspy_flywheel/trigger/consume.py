"""The trigger's input consumer: every partition of its topics, positioned from stored offsets.

No consumer group: offsets live in PostgreSQL next to the state they produced (one active
instance per scope holds an advisory lock), so a restart resumes exactly after the last commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from dspy_flywheel.contracts.codec import DecodeError, decode
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.trigger.engine import TriggerEngine
from dspy_flywheel.trigger.store import Offsets

log = logging.getLogger(__name__)


async def open_event_consumer(
    kafka: KafkaSettings,
    topics: Sequence[str],
    offsets: Offsets,
    *,
    start_from: str = "earliest",
    fetch_max_wait_ms: int = 100,
) -> AIOKafkaConsumer:
    # topics given + no group: aiokafka assigns every partition (and follows new ones)
    consumer = AIOKafkaConsumer(
        *topics,
        **kafka.client_kwargs(),
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_max_wait_ms,
        auto_offset_reset=start_from,
    )
    await consumer.start()
    try:
        tps = sorted(consumer.assignment())
        fresh = []
        for tp in tps:
            stored = offsets.get((tp.topic, tp.partition))
            if stored is None:
                fresh.append(tp)
            else:
                consumer.seek(tp, stored)
        if fresh and start_from == "earliest":
            await consumer.seek_to_beginning(*fresh)
        elif fresh:
            await consumer.seek_to_end(*fresh)
    except BaseException:
        await asyncio.sleep(0)  # see ConfigFollower.stop
        await consumer.stop()
        raise
    return consumer


async def warm_execution_cache(
    kafka: KafkaSettings, topic: str, offsets: Offsets, engine: TriggerEngine, ttl_s: float
) -> int:
    """Re-read recent executions before the stored offsets so late labels can still be judged."""
    resume = {
        tp: off
        for (t, p), off in offsets.items()
        if t == topic and off > 0
        for tp in [TopicPartition(t, p)]
    }
    if not resume:
        return 0
    consumer = AIOKafkaConsumer(
        **kafka.client_kwargs(), group_id=None, enable_auto_commit=False, fetch_max_wait_ms=10
    )
    await consumer.start()
    loaded = 0
    try:
        consumer.assign(list(resume))
        since = int((time.time() - ttl_s) * 1000)
        starts = await consumer.offsets_for_times({tp: since for tp in resume})
        todo = {}
        for tp, found in starts.items():
            if found is not None and found.offset < resume[tp]:
                consumer.seek(tp, found.offset)
                todo[tp] = resume[tp]
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000)
            if not batch:
                break
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= todo.get(tp, -1):
                        break
                    try:
                        engine.remember_execution(decode(record.value, record.headers).record)
                        loaded += 1
                    except (DecodeError, KeyError, TypeError, ValueError):
                        continue
                if await consumer.position(tp) >= todo.get(tp, 0):
                    todo.pop(tp, None)
    finally:
        await consumer.stop()
    log.info("warmed the execution cache with %d recent executions", loaded)
    return loaded
