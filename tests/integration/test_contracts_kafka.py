"""Every event type through the real broker: produced with the codec, consumed back equal."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer

from dspy_flywheel.bus import publish, start_producer
from dspy_flywheel.contracts import EVENT_TYPES, EVENTS, CorruptPayload, Event, decode
from dspy_flywheel.contracts.compat import sample_value
from dspy_flywheel.contracts.registry import default_registry
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.settings import KafkaSettings

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_every_event_type_round_trips_through_kafka(
    kafka_settings: KafkaSettings, topics: Topics, group_id: str
) -> None:
    topic = topics.alerts
    producer = await start_producer(kafka_settings)
    sent: dict[str | None, Event] = {}
    try:
        for event_type in EVENT_TYPES:
            record = sample_value(default_registry().current[event_type].schema)
            event = EVENTS[event_type].from_record(record)
            enc = await publish(producer, topic, "w1", event, traceparent=TRACEPARENT)
            sent[enc.event_id] = event
        await producer.send_and_wait(topic, b"\x00not avro", key=b"w1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **kafka_settings.client_kwargs(),
    )
    await consumer.start()
    received: dict[str | None, Event] = {}
    corrupt = 0
    try:
        async with asyncio.timeout(30):
            while len(received) + corrupt < len(EVENT_TYPES) + 1:
                msg = await consumer.getone()
                try:
                    dec = decode(msg.value, msg.headers)
                except CorruptPayload:
                    corrupt += 1
                    continue
                assert dec.traceparent == TRACEPARENT
                received[dec.event_id] = dec.event
    finally:
        await consumer.stop()
    assert received == sent
    assert corrupt == 1
