"""Helpers every integration test shares: polling with a deadline, watching topics, trace ids,
log tails.

Async results are asserted by polling (``until``), never by sleeping. ``alive`` is checked on
every poll (a service that died fails at once, with its log); ``context`` adds what a failure
message needs (e.g. the service's log tail).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self, TypeVar

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dspy_flywheel.bus import open_consumer, stop_consumer
from dspy_flywheel.contracts.codec import Decoded, decode
from dspy_flywheel.settings import KafkaSettings

T = TypeVar("T")
DEADLINE_S = 60.0


async def until(
    predicate: Callable[[], Awaitable[T | None]],
    what: str,
    within_s: float = DEADLINE_S,
    *,
    every_s: float = 0.05,
    alive: Callable[[], None] | None = None,
    context: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy (returned); fail after
    ``within_s`` seconds."""
    end = time.monotonic() + within_s
    while True:
        if alive is not None:
            alive()
        value = await predicate()
        if value:
            return value
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


def unused_port() -> int:
    """A local TCP port nothing listens on (a broker address that refuses connections)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
