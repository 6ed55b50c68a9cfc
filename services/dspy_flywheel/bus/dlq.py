"""Dead-letter publishing: the original bytes, key and headers plus why the record was refused.

One header set for every consumer, added after the original headers:

``dlq_reason``     short code (``corrupt_payload``, ``unknown_schema``, ``invalid_record`` ...)
``dlq_error``      the message (the exception's type and text), at most 1000 characters
``dlq_source``     ``topic:partition:offset`` of the original
``dlq_consumer``   which consumer refused it (``collector``, ``trigger``, ``optimizer`` ...)
``dlq_retriable``  ``true`` / ``false``
``dlq_at_ms``      when it was refused (epoch ms)

The dead letter goes to ``<topic>.dlq`` with the original key, so one worker's letters stay in
order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaProducer

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.metrics.kafka import note_dead_letters

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 1000
INVALID_RECORD = "invalid_record"


class Source(Protocol):
    """What a dead letter is made from: a consumed record (aiokafka's or the collector's)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True)
class DeadLetter:
    source: Source
    reason: str
    error: str
    retriable: bool = False

    @classmethod
    def of(cls, source: Source, exc: BaseException) -> DeadLetter:
        """``reason``: the exception's ``reason`` code if it has one (the codec's errors do)."""
        return cls(
            source,
            getattr(exc, "reason", INVALID_RECORD),
            f"{type(exc).__name__}: {exc}",
            bool(getattr(exc, "retriable", False)),
        )

    def headers(self, consumer: str, now_ms: int) -> list[tuple[str, bytes]]:
        s = self.source
        return [
            *s.headers,
            ("dlq_reason", self.reason.encode()),
            ("dlq_error", self.error[:MAX_ERROR_CHARS].encode(errors="replace")),
            ("dlq_source", f"{s.topic}:{s.partition}:{s.offset}".encode()),
            ("dlq_consumer", consumer.encode()),
            ("dlq_retriable", str(self.retriable).lower().encode()),
            ("dlq_at_ms", str(now_ms).encode()),
        ]


class DeadLetters:
    """Publishes dead letters for one consumer (named in ``dlq_consumer``)."""

    def __init__(self, producer: AIOKafkaProducer, consumer: str) -> None:
        self._producer = producer
        self.consumer = consumer

    async def send(self, source: Source, exc: BaseException) -> None:
        """Dead-letter one record refused with ``exc``; waits for the broker's ack."""
        await self.publish([DeadLetter.of(source, exc)])

    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        """Send all letters and wait until the broker has acknowledged every one."""
        now_ms = int(time.time() * 1000)
        futures = []
        for letter in letters:
            s = letter.source
            futures.append(
                await self._producer.send(
                    Topics.dlq(s.topic),
                    value=s.value,
                    key=s.key,
                    headers=letter.headers(self.consumer, now_ms),
                )
            )
            log.warning(
                "sent %s[%d]@%d to the DLQ: %s", s.topic, s.partition, s.offset, letter.error
            )
        await asyncio.gather(*futures)
        for letter in letters:
            note_dead_letters(letter.source.topic, [letter.reason])
