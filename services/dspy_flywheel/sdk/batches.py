"""Events as record batches, one per topic-partition (``producer.send_batch``).

Far less work per event than ``producer.send`` per message, which matters because it runs on
the worker's IO thread next to the calls. Partitions come from the key with Kafka's default
partitioner (murmur2), so a worker's events land where any other client would put them.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from dspy_flywheel.sdk.spool import Message

_default = DefaultPartitioner()


class Partitioner:
    """Partition per (topic, key), looked up once per producer connection."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, bytes | None], int] = {}

    def forget(self) -> None:
        self._cache.clear()

    async def group(
        self, producer: AIOKafkaProducer, batch: list[Message]
    ) -> dict[tuple[str, int], list[int]]:
        """Indexes of ``batch`` by (topic, partition), in order."""
        groups: dict[tuple[str, int], list[int]] = {}
        for i, message in enumerate(batch):
            cache_key = (message.topic, message.key)
            partition = self._cache.get(cache_key)
            if partition is None:
                partitions = sorted(await producer.partitions_for(message.topic))
                partition = _default(message.key, partitions, partitions)
                self._cache[cache_key] = partition
            groups.setdefault((message.topic, partition), []).append(i)
        return groups


def record_batches(
    producer: AIOKafkaProducer, batch: list[Message], indexes: list[int]
) -> list[tuple[Any, list[int]]]:
    """Builders holding ``batch[i]`` for ``indexes`` (as many as the size limit needs)."""
    out: list[tuple[Any, list[int]]] = []
    builder = producer.create_batch()
    members: list[int] = []
    for i in indexes:
        m = batch[i]
        headers = list(m.headers)
        if builder.append(key=m.key, value=m.value, timestamp=None, headers=headers) is None:
            if not members:
                raise ValueError(f"event {m.event_id} is larger than a record batch")
            out.append((builder, members))
            builder, members = producer.create_batch(), []
            builder.append(key=m.key, value=m.value, timestamp=None, headers=headers)
        members.append(i)
    if members:
        out.append((builder, members))
    return out
