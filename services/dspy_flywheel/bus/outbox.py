"""The outbox relay: events committed as rows with the state they describe, then published.

A service writes an event row in the same database transaction as its state (its own table,
its own ``OutboxSource``); ``OutboxRelay`` publishes pending rows oldest first and has the
source mark them sent only after the broker acknowledged all of them. A crash between the
send and the mark re-sends those rows with the **same** ``event_id``, which consumers dedupe.
Failures (broker or database away) are logged and retried every ``poll_s``.

A row that can never be sent is set aside, not retried: its record no longer decodes, or it does
not encode, or the producer refuses the record itself (``RECORD_FAULTS``: larger than the
broker takes, a topic name it refuses). ``send`` returns those rows' reasons; the source marks
them dead with the reason (the row stays for inspection), the rows after them go out, and each
is logged as an error and counted in ``flywheel.dlq.records`` (``error.type``
``outbox_<exception>``).
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

from dspy_flywheel.bus.errors import RECORD_FAULTS
from dspy_flywheel.contracts.codec import encode
from dspy_flywheel.contracts.events import Event
from dspy_flywheel.metrics.kafka import note_dead_letters

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxEvent:
    event_id: str
    topic: str
    key: str | None
    event: Event
    traceparent: str | None


Refused = dict[str, str]  # event_id -> why that row can never be sent
Send = Callable[[Sequence[OutboxEvent]], Awaitable[Refused]]


def refusal(exc: BaseException) -> str:
    """The reason stored with a dead row: the exception's type and text, bounded."""
    return f"{type(exc).__name__}: {exc}"[:1000]


def note_refused(topic: str, event_type: str, event_id: str, reason: str) -> None:
    log.error(
        "outbox: %s %s for %s set aside, never sendable: %s", event_type, event_id, topic, reason
    )
    note_dead_letters(topic, ["outbox_" + reason.split(":", 1)[0]])


class OutboxSource(Protocol):
    async def relay(self, limit: int, send: Send) -> int:
        """Pass up to ``limit`` unsent events, oldest first, to ``send``; once it returns,
        mark them sent, except the ones it refused (and rows that do not decode), which are
        marked dead (module docstring). Returns how many rows were taken."""
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
        """Relay one batch of pending events; returns how many rows were taken (sent or set
        aside)."""
        return await self.source.relay(self.batch_size, self._send)

    async def _send(self, events: Sequence[OutboxEvent]) -> Refused:
        """Send ``events``; returns the refused ones (module docstring). Any other failure
        raises once every send has settled: the whole batch is retried."""
        refused: Refused = {}
        sending: list[tuple[OutboxEvent, asyncio.Future[object]]] = []
        for e in events:
            try:
                encoded = encode(e.event, event_id=e.event_id, traceparent=e.traceparent)
                future = await self.producer.send(
                    e.topic,
                    encoded.value,
                    key=e.key.encode() if e.key is not None else None,
                    headers=encoded.headers,
                )
            except (ValueError, *RECORD_FAULTS) as exc:
                refused[e.event_id] = refusal(exc)
                continue
            sending.append((e, future))
        results = await asyncio.gather(*(f for _, f in sending), return_exceptions=True)
        for (e, _), result in zip(sending, results, strict=True):
            if isinstance(result, RECORD_FAULTS):
                refused[e.event_id] = refusal(result)
            elif isinstance(result, BaseException):
                raise result
        for e in events:
            if e.event_id in refused:
                note_refused(e.topic, e.event.event_type, e.event_id, refused[e.event_id])
            elif self.on_sent is not None:
                self.on_sent(e)
        return refused
