"""The compacted ``trigger-config`` topic: key = worker id, value = TriggerConfig, null = removed.

``read_configs`` reads it from the beginning to its current end (what ``trigger set/show`` and
the service's startup use); ``ConfigFollower`` then keeps applying new values as they arrive.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from dspy_flywheel.bus.publish import start_producer
from dspy_flywheel.contracts.codec import DecodeError, decode, encode
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.trigger.config import ConfigError, TriggerPolicyConfig

log = logging.getLogger(__name__)

ConfigCallback = Callable[[str, TriggerPolicyConfig | None], None]


def parse_config_record(
    record: ConsumerRecord[bytes, bytes],
) -> tuple[str, TriggerPolicyConfig | None]:
    """(worker id, config or None for a tombstone); raises DecodeError/ConfigError on bad input."""
    key = record.key.decode() if record.key is not None else None
    if record.value is None:
        if key is None:
            raise ConfigError("tombstone without a key")
        return key, None
    decoded = decode(record.value, record.headers)
    if decoded.event_type != "TriggerConfig":
        raise ConfigError(f"unexpected {decoded.event_type} on the trigger-config topic")
    config = TriggerPolicyConfig.from_record(decoded.record)
    return key or config.worker_id, config


class ConfigFollower:
    """Reads the whole config topic on ``start`` and then follows it."""

    def __init__(self, kafka: KafkaSettings, topic: str, *, fetch_max_wait_ms: int = 100) -> None:
        self.topic = topic
        # topics given + no group: aiokafka assigns every partition (and follows new ones)
        self._consumer = AIOKafkaConsumer(
            topic,
            **kafka.client_kwargs(),
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=fetch_max_wait_ms,
        )

    async def start(self) -> dict[str, TriggerPolicyConfig]:
        """Assign every partition, replay from the beginning to the end; return the snapshot."""
        await self._consumer.start()
        tps = sorted(self._consumer.assignment())
        await self._consumer.seek_to_beginning(*tps)
        ends = await self._consumer.end_offsets(tps)
        snapshot: dict[str, TriggerPolicyConfig] = {}

        def collect(worker_id: str, config: TriggerPolicyConfig | None) -> None:
            if config is None:
                snapshot.pop(worker_id, None)
            else:
                snapshot[worker_id] = config

        while await self._behind(ends):
            batch = await self._consumer.getmany(timeout_ms=500)
            self._apply(batch, collect)
        return snapshot

    async def _behind(self, ends: dict[TopicPartition, int]) -> bool:
        for tp, end in ends.items():
            if await self._consumer.position(tp) < end:
                return True
        return False

    async def follow(self, callback: ConfigCallback) -> None:
        """Apply each new value as it arrives (runs until cancelled)."""
        while True:
            batch = await self._consumer.getmany(timeout_ms=1000)
            self._apply(batch, callback)

    async def stop(self) -> None:
        # let aiokafka's internal no-group task start, else stop() re-raises its cancellation
        await asyncio.sleep(0)
        await self._consumer.stop()

    @staticmethod
    def _apply(
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]], callback: ConfigCallback
    ) -> None:
        for records in batch.values():
            for record in records:
                try:
                    worker_id, config = parse_config_record(record)
                except (DecodeError, ConfigError, TypeError, ValueError) as exc:
                    log.warning(
                        "skipping bad trigger config at %s[%d]@%d: %s",
                        record.topic,
                        record.partition,
                        record.offset,
                        exc,
                    )
                    continue
                callback(worker_id, config)


async def read_configs(kafka: KafkaSettings, topic: str) -> dict[str, TriggerPolicyConfig]:
    """Every worker's current config (a one-off read of the compacted topic)."""
    follower = ConfigFollower(kafka, topic, fetch_max_wait_ms=10)
    try:
        return await follower.start()
    finally:
        await follower.stop()


async def write_config(kafka: KafkaSettings, topic: str, config: TriggerPolicyConfig) -> None:
    producer = await start_producer(kafka)
    try:
        encoded = encode("TriggerConfig", config.to_record())
        await producer.send_and_wait(
            topic, encoded.value, key=config.worker_id.encode(), headers=encoded.headers
        )
    finally:
        await producer.stop()


async def delete_config(kafka: KafkaSettings, topic: str, worker_id: str) -> None:
    """Publish a tombstone: the worker falls back to having no trigger config."""
    producer = await start_producer(kafka)
    try:
        await producer.send_and_wait(topic, None, key=worker_id.encode())
    finally:
        await producer.stop()
