"""The outbox relay: events committed as rows with the state they describe, then published.

A service writes an event row in the same database transaction as its state (its own table,
its own ``OutboxSource``); ``OutboxRelay`` publishes pending rows oldest first and has the
source mark them sent only after the broker acknowledged all of them. A crash between the
send and the mark re-sends those rows with the **same** ``event_id``, which consumers dedupe.
Failures (broker or database away) are logged and retried every ``poll_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from dspy_flywheel.contracts.codec import encode
from dspy_flywheel.contracts.events import Event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxEvent:
    event_id: str
    topic: str
    key: str | None
    event: Event
    traceparent: str | None


Send = Callable[[Sequence[OutboxEvent]], Awaitable[None]]


class OutboxSource(Protocol):
    async def relay(self, limit: int, send: Send) -> int:
        """Pass up to ``limit`` unsent events, oldest first, to ``send``; once it returns,
        mark them sent. Returns how many were passed."""
        ...


class OutboxRelay:
    """Publishes a source's pending events; ``wake()`` after a commit to send without delay."""

    def __init__(
        self,
        source: OutboxSource,
        producer: AIOKafkaProducer,
        *,
        poll_s: float = 0.5,
        batch_size: int = 100,
        on_sent: Callable[[OutboxEvent], None] | None = None,
    ) -> None:
        self.source = source
        self.producer = producer
        self.poll_s = poll_s
        self.batch_size = batch_size
        self.on_sent = on_sent
        self.published = 0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set. The loop checks ``stop`` itself: on Python 3.11 a
        cancellation that arrives as ``wait_for``'s wake-up completes is swallowed, and a
        relay that relied on being cancelled went on forever (a rollout test's teardown hung)."""
        while not stop.is_set():
            self._wake.clear()
            try:
                sent = await self.relay_once()
            except (TimeoutError, OSError, KafkaError, asyncpg.PostgresError) as exc:
                log.warning("outbox relay failed, will retry: %r", exc)
                sent = 0
            except Exception:
                log.exception("outbox relay failed, will retry")
                sent = 0
            if sent >= self.batch_size:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def relay_once(self) -> int:
        """Publish one batch of pending events; returns how many were sent."""
        sent = await self.source.relay(self.batch_size, self._send)
        self.published += sent
        return sent

    async def _send(self, events: Sequence[OutboxEvent]) -> None:
        futures = []
        for e in events:
            encoded = encode(e.event, event_id=e.event_id, traceparent=e.traceparent)
            futures.append(
                await self.producer.send(
                    e.topic,
                    encoded.value,
                    key=e.key.encode() if e.key is not None else None,
                    headers=encoded.headers,
                )
            )
        await asyncio.gather(*futures)
        if self.on_sent is not None:
            for e in events:
                self.on_sent(e)
