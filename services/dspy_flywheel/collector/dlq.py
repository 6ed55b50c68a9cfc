"""Dead-letter publishing: the original bytes, key and headers plus why it was rejected.

Added headers: ``dlq_reason`` (short code, e.g. ``corrupt_payload``), ``dlq_error`` (message),
``dlq_source`` (``topic:partition:offset``) and ``dlq_at_ms``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from dspy_flywheel.collector.events import Rejected
from dspy_flywheel.contracts.topics import Topics

MAX_ERROR_CHARS = 1000


def dlq_headers(reject: Rejected, now_ms: int) -> list[tuple[str, bytes]]:
    extra = [
        ("dlq_reason", reject.reason.encode()),
        ("dlq_error", reject.detail[:MAX_ERROR_CHARS].encode(errors="replace")),
        ("dlq_source", reject.message.coordinates.encode()),
        ("dlq_at_ms", str(now_ms).encode()),
    ]
    return [*reject.message.headers, *extra]


class DeadLetters:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def publish(self, rejects: Sequence[Rejected]) -> None:
        """Send all rejects and wait until the broker has acknowledged every one."""
        now_ms = int(time.time() * 1000)
        futures = [
            await self._producer.send(
                Topics.dlq(r.message.topic),
                value=r.message.value,
                key=r.message.key,
                headers=dlq_headers(r, now_ms),
            )
            for r in rejects
        ]
        await asyncio.gather(*futures)
