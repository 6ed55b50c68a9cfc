"""Helpers every integration test shares: polling with a deadline, watching topics, reading
events back, publishing programs, trace ids, log tails.

Async results are asserted by polling (``until``), never by sleeping. ``alive`` is checked on
every poll (a service that died fails at once, with its log); ``context`` adds what a failure
message needs (e.g. the service's log tail).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self, TypeVar, cast

import asyncpg
import dspy
import pytest
from aiokafka import AIOKafkaConsumer
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dspy_flywheel.bus import open_consumer, stop_consumer
from dspy_flywheel.bus.publish import publish, start_producer
from dspy_flywheel.compile.signature import signature_of
from dspy_flywheel.contracts.codec import Decoded, decode
from dspy_flywheel.contracts.events import Event, ProgramUpdated, now_ms
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.telemetry import trace_id_of

T = TypeVar("T")
DEADLINE_S = 60.0


async def until(
    predicate: Callable[[], Awaitable[T | None] | T | None],
    what: str,
    within_s: float = DEADLINE_S,
    *,
    every_s: float = 0.05,
    alive: Callable[[], None] | None = None,
    context: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` (a plain or an async function) until it returns something truthy
    (returned); fail after ``within_s`` seconds."""
    end = time.monotonic() + within_s
    while True:
        if alive is not None:
            alive()
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return cast(T, value)
        if time.monotonic() > end:
            detail = f":\n{context()}" if context is not None else ""
            pytest.fail(f"timed out after {within_s:.0f} s waiting for {what}{detail}")
        await asyncio.sleep(every_s)


async def until_sql(
    pool: asyncpg.Pool,
    sql: str,
    done: Callable[[Any], bool],
    within_s: float = DEADLINE_S,
    **kw: Any,
) -> Any:
    """Poll ``pool.fetchval(sql)`` until ``done(value)``; returns the value."""

    async def check() -> tuple[Any] | None:
        value = await pool.fetchval(sql)
        return (value,) if done(value) else None

    (value,) = await until(check, repr(sql), within_s, every_s=0.2, **kw)
    return value


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def tail(log: Path, chars: int = 3000) -> str:
    return log.read_text()[-chars:] if log.exists() else "(no log)"


class EventWatch:
    """Collects every event on ``topics`` from the beginning, with its arrival time
    (``async with EventWatch(kafka, topic) as watch``)."""

    def __init__(self, kafka: KafkaSettings, *topics: str) -> None:
        self.events: list[Decoded] = []
        self.arrived: list[float] = []  # time.perf_counter() of each event
        self._kafka, self._topics = kafka, topics
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._consumer = await open_consumer(self._kafka, self._topics, fetch_max_wait_ms=20)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await stop_consumer(self._consumer)

    async def _run(self) -> None:
        async for msg in self._consumer:
            self.events.append(decode(msg.value, msg.headers))
            self.arrived.append(time.perf_counter())

    def of(self, event_type: str | None = None, **match: Any) -> list[Decoded]:
        """The events of ``event_type`` (any when None) with the ``match`` field values."""
        return [
            d
            for d in self.events
            if event_type in (None, d.event_type)
            and all(getattr(d.event, k, None) == v for k, v in match.items())
        ]

    def for_worker(self, worker: str) -> list[dict[str, Any]]:
        return [d.event.to_record() for d in self.of(worker_id=worker)]

    def arrivals(self, worker: str) -> list[float]:
        return [
            t
            for d, t in zip(self.events, self.arrived, strict=True)
            if getattr(d.event, "worker_id", None) == worker
        ]

    async def caught_up(self) -> bool:
        """True once every event now on the topics has been collected."""
        ends = await self._consumer.end_offsets(list(self._consumer.assignment()))
        for tp, end in ends.items():
            if await self._consumer.position(tp) < end:
                return False
        return True


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


def span_exporter() -> InMemorySpanExporter:
    """An in-memory exporter on this process's SDK tracer provider (installed when missing):
    the spans of services run in-process (``app.run``) end up in it."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def spans_in_trace(exporter: InMemorySpanExporter, traceparent: str) -> list[ReadableSpan]:
    """The finished spans ``exporter`` holds of the trace ``traceparent`` names."""
    trace_id = trace_id_of(traceparent)
    return [
        s
        for s in exporter.get_finished_spans()
        if s.context is not None and format(s.context.trace_id, "032x") == trace_id
    ]


def unused_port() -> int:
    """A local TCP port nothing listens on (a broker address that refuses connections)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
