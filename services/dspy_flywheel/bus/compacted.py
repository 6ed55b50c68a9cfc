"""A compacted topic as a live map: key -> latest value (a tombstone removes the key).

``CompactedFollower(kafka, topic, parse)`` reads every partition from the beginning to the
current end on ``start`` (returning the snapshot), then ``follow`` hands each new value to a
callback. ``parse`` turns a record into ``(key, value or None)``; a record it refuses
(``bus.is_bad_record``) is skipped, so one bad value never stops the follower: dead-lettered
when the follower is given the topic owner's ``dead_letters`` (build them with
``already_sent``: the topic is read from its start on every run), else logged.
``write_compacted`` puts a value (or a tombstone) under a key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer

from dspy_flywheel.bus.consumer import batches, open_consumer, read_to_end, stop_consumer
from dspy_flywheel.bus.dlq import DeadLetters
from dspy_flywheel.bus.guard import UNTIL_IT_WORKS, Record, RecordGuard
from dspy_flywheel.bus.publish import producing, publish
from dspy_flywheel.contracts.events import Event
from dspy_flywheel.settings import KafkaSettings

T = TypeVar("T")


class CompactedFollower(Generic[T]):
    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        parse: Callable[[Record], tuple[str, T | None]],
        *,
        fetch_max_wait_ms: int = 100,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self.topic = topic
        self._kafka = kafka
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._guard = RecordGuard(dead_letters, parse, retry=UNTIL_IT_WORKS)
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> dict[str, T]:
        """Read from the beginning to the end; the latest value per key."""
        self._consumer = await open_consumer(
            self._kafka, [self.topic], fetch_max_wait_ms=self._fetch_max_wait_ms
        )
        snapshot: dict[str, T] = {}

        async def collect(parsed: tuple[str, T | None]) -> None:
            key, value = parsed
            if value is None:
                snapshot.pop(key, None)
            else:
                snapshot[key] = value

        await read_to_end(self._consumer, lambda record: self._guard(record, collect))
        return snapshot

    async def follow(self, callback: Callable[[str, T | None], Awaitable[None] | None]) -> None:
        """Hand each new value to ``callback`` (sync or async) as it arrives (runs until
        cancelled)."""
        assert self._consumer is not None, "start() first"

        async def apply(parsed: tuple[str, T | None]) -> None:
            done = callback(*parsed)
            if done is not None:
                await done

        async for batch in batches(self._consumer, timeout_ms=1000):
            for records in batch.values():
                for record in records:
                    await self._guard(record, apply)

    async def stop(self) -> None:
        if self._consumer is not None:
            await stop_consumer(self._consumer)


async def read_compacted(
    kafka: KafkaSettings, topic: str, parse: Callable[[Record], tuple[str, T | None]]
) -> dict[str, T]:
    """The topic's current map (a one-off read)."""
    follower = CompactedFollower(kafka, topic, parse, fetch_max_wait_ms=10)
    try:
        return await follower.start()
    finally:
        await follower.stop()


async def write_compacted(kafka: KafkaSettings, topic: str, key: str, value: Event | None) -> None:
    """Publish ``value`` under ``key`` (None: a tombstone, the key is removed)."""
    async with producing(kafka) as producer:
        if value is None:
            await producer.send_and_wait(topic, None, key=key.encode())
        else:
            await publish(producer, topic, key, value)
