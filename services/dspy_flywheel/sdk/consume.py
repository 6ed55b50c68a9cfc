"""Reading a whole topic as every worker instance must: no consumer group, all partitions.

``start_reader`` subscribes without a group, so the consumer owns every partition (and picks up
partitions added later) and starts from the earliest offset. The topic must exist: the worker
creates its topics before any reader starts (a subscription to a missing topic would let a
broker with ``auto.create.topics.enable`` create it with the wrong settings).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from dspy_flywheel.settings import KafkaSettings

Handle = Callable[[ConsumerRecord[Any, Any]], None]


async def start_reader(
    kafka: KafkaSettings, topic: str, *, fetch_max_wait_ms: int = 100
) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    consumer = AIOKafkaConsumer(
        topic,
        **kafka.client_kwargs(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
    await consumer.start()
    try:
        tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        if not tps:
            raise LookupError(f"topic {topic} has no partitions")
    except BaseException:
        await stop_quietly(consumer)
        raise
    return consumer, tps


async def read_to_end(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], handle: Handle
) -> dict[int, int]:
    """Feed every record from the current positions up to the end offsets as of now to
    ``handle``; returns the next offset per partition."""
    ends = await consumer.end_offsets(tps)
    while await _behind(consumer, ends):
        batch = await consumer.getmany(*tps, timeout_ms=500)
        for records in batch.values():
            for record in records:
                handle(record)
    return {tp.partition: await consumer.position(tp) for tp in tps}


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


async def stop_quietly(consumer: AIOKafkaConsumer) -> None:
    with contextlib.suppress(Exception):  # closing after a lost connection: nothing to do
        await asyncio.wait_for(consumer.stop(), 5)
