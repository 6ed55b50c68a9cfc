"""Publishing encoded events with their envelope headers; starting and stopping producers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaProducer

from dspy_flywheel.bus.preflight import start_client
from dspy_flywheel.bus.quiet import no_payloads_in_logs
from dspy_flywheel.contracts.codec import Encoded, encode
from dspy_flywheel.contracts.events import Event
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.telemetry import current_traceparent

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 5.0


async def start_producer(kafka: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """A started producer (a setting that cannot work: ``ConnectionSetupError`` naming it)."""
    kw: dict[str, Any] = {"enable_idempotence": True, "linger_ms": 5, "acks": "all", **overrides}
    no_payloads_in_logs()
    producer = AIOKafkaProducer(**kafka.client_kwargs(), **kw)
    try:
        await start_client(producer, kafka)
    except BaseException:
        await stop_producer(producer, 1.0)  # close what start() opened
        raise
    return producer


@asynccontextmanager
async def producing(kafka: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer for the block's sends (a command's), stopped after it."""
    producer = await start_producer(kafka)
    try:
        yield producer
    finally:
        await stop_producer(producer)


async def stop_producer(producer: AIOKafkaProducer, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop ``producer``; give up after ``timeout_s``.

    With the broker gone, ``stop()`` waits for every pending batch to expire (the request
    timeout, 40 s by default); seen as an optimizer that took minutes to exit. Giving up loses
    nothing: every send in the services is awaited by a caller that only records success
    (outbox row sent, offset committed) after the broker's ack, so an unacked one is retried.
    """
    try:
        await asyncio.wait_for(producer.stop(), timeout_s)
    except TimeoutError:
        log.warning(
            "Kafka producer did not stop within %.0f s (broker unreachable?): its unacknowledged "
            "sends are retried by their senders on the next start",
            timeout_s,
        )


async def publish(
    producer: AIOKafkaProducer,
    topic: str,
    key: str | None,
    event: Event,
    *,
    traceparent: str | None = None,
    event_id: str | None = None,
) -> Encoded:
    """Encode and send one event; waits for the broker's ack."""
    encoded = encode(event, traceparent=traceparent or current_traceparent(), event_id=event_id)
    await producer.send_and_wait(
        topic, encoded.value, key=key.encode() if key is not None else None, headers=encoded.headers
    )
    return encoded
