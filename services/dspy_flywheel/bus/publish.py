"""Publishing encoded events with their envelope headers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer

from dspy_flywheel.contracts.codec import Encoded, encode
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.telemetry import current_traceparent


async def start_producer(kafka: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    kw: dict[str, Any] = {"enable_idempotence": True, "linger_ms": 5, "acks": "all"}
    kw.update(overrides)
    producer = AIOKafkaProducer(**kafka.client_kwargs(), **kw)
    await producer.start()
    return producer


async def publish(
    producer: AIOKafkaProducer,
    topic: str,
    key: str | None,
    event_type: str,
    record: Mapping[str, Any],
    *,
    traceparent: str | None = None,
) -> Encoded:
    """Encode and send one event; waits for the broker's ack."""
    encoded = encode(event_type, record, traceparent=traceparent or current_traceparent())
    await producer.send_and_wait(
        topic,
        encoded.value,
        key=key.encode() if key is not None else None,
        headers=encoded.headers,
    )
    return encoded
