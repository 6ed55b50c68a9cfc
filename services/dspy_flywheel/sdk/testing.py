"""Helpers for testing workers against a real broker: read events back, publish programs.

events = await read_events(kafka, topics.executions, count=1000, within_s=30)
event = program_updated_event("classifier", 3, compiled_program)
await publish_event(kafka, topics.program_updated, "classifier", event)
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import dspy
from aiokafka import AIOKafkaConsumer

from dspy_flywheel.bus.publish import publish, start_producer
from dspy_flywheel.compile.signature import signature_of
from dspy_flywheel.contracts.codec import Decoded, decode
from dspy_flywheel.contracts.events import Event, ProgramUpdated, now_ms
from dspy_flywheel.settings import KafkaSettings


def program_updated_event(
    worker_id: str,
    version: int,
    program: dspy.Module,
    *,
    optimizer: str = "manual",
    job_id: str | None = None,
    signature: dict[str, Any] | None = None,
    rollout: str = "serve",
) -> ProgramUpdated:
    """A ProgramUpdated event for ``program`` (its dumped state and its signature);
    ``rollout="candidate"`` publishes it for a canary (the rollout service decides)."""
    return ProgramUpdated(
        worker_id=worker_id,
        version=version,
        program_state_json=json.dumps(program.dump_state()),
        signature_json=json.dumps(signature if signature is not None else signature_of(program)),
        optimizer=optimizer,
        job_id=job_id,
        timestamp_ms=now_ms(),
        rollout=rollout,
    )


async def publish_event(kafka: KafkaSettings, topic: str, key: str, event: Event) -> None:
    producer = await start_producer(kafka)
    try:
        await publish(producer, topic, key, event)
    finally:
        await producer.stop()


async def read_events(
    kafka: KafkaSettings,
    topic: str,
    *,
    count: int | None = None,
    within_s: float = 30.0,
    settle: float = 1.0,
) -> list[Decoded]:
    """Decoded events of ``topic`` from the beginning: until ``count`` arrived (then ``settle``
    more seconds, to catch duplicates) or ``within_s`` seconds passed."""
    consumer = AIOKafkaConsumer(
        topic,
        **kafka.client_kwargs(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    out: list[Decoded] = []
    deadline = time.monotonic() + within_s
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                out.extend(decode(r.value, r.headers) for r in records)
            if count is not None and len(out) >= count:
                deadline = min(deadline, time.monotonic() + settle)
                count = None  # now only settling
        return out
    finally:
        await consumer.stop()


async def wait_until(predicate: Any, within_s: float, interval: float = 0.02) -> bool:
    """Poll ``predicate()`` until true or ``within_s`` seconds pass."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return bool(predicate())
