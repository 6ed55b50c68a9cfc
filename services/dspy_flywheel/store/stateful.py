"""Skeleton of a service that reads every partition itself and keeps its state in PostgreSQL.

The trigger and the rollout service are built on it: each instance reads whole topics (no
consumer group), one instance per scope is active (a PostgreSQL advisory lock; the others stand
by), and each batch ends in ONE transaction holding the changed worker states, the next offsets
(``<service>_offsets``) and the outbox rows. A crash resumes from a consistent point.

``StatefulSettings``: the knobs both share. ``run_stateful``: the composition both share (each
service's ``app.run`` passes its ``build``). ``BatchService``: the records of a batch in topic
order through the record guard, then one commit; ticks between batches.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import asyncpg
from aiokafka import AIOKafkaProducer
from pydantic import Field

from dspy_flywheel.bus import (
    Batch,
    DeadLetters,
    OutboxRelay,
    RecordGuard,
    batches,
    every,
    in_order,
    open_consumer,
    retrying,
    stop_consumer,
    supervise,
)
from dspy_flywheel.bus.letters import sent_sources
from dspy_flywheel.contracts.codec import Decoded
from dspy_flywheel.metrics.setup import setup_telemetry
from dspy_flywheel.settings import FlywheelSettings
from dspy_flywheel.store.leader import acquire_leadership, lock_key
from dspy_flywheel.store.offsets import Offsets, load_offsets
from dspy_flywheel.store.pool import connect
from dspy_flywheel.store.startup import open_service

log = logging.getLogger(__name__)
R = TypeVar("R")  # what handling one record yields for the batch's commit


class StatefulSettings(FlywheelSettings):
    """Service-wide knobs of a stateful service (its subclass sets the env prefix)."""

    tick_seconds: float = Field(default=1.0, gt=0)
    pending_feedback_ttl_seconds: float = Field(default=600.0, gt=0)
    start_from: Literal["earliest", "latest"] = "earliest"
    fetch_max_wait_ms: int = Field(default=100, ge=0)
    max_batch_records: int = Field(default=500, ge=1)
    scope: str | None = None  # state namespace in the DB; default: the topic prefix
    migrate: bool = True  # apply DB migrations at start
    leader_lock: bool = True  # one active instance per scope (PostgreSQL advisory lock)

    @property
    def state_scope(self) -> str:
        return self.scope if self.scope is not None else self.topic_prefix


@dataclass(frozen=True)
class Opened:
    """What ``run_stateful`` opened for ``service``, handed to its ``build``."""

    service: str
    settings: StatefulSettings
    stop: asyncio.Event
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    positions: Offsets  # where its last committed batch ended (``service_offsets``)

    async def config_letters(self, topic: str) -> DeadLetters:
        """Dead letters for a compacted topic read from its start at each start: a record
        already dead-lettered (by an earlier start) is not sent again."""
        sent = await sent_sources(self.settings.kafka, topic)
        return DeadLetters(self.producer, self.service, already_sent=sent)


class BatchService(ABC, Generic[R]):
    """Handles a batch: its records in topic order (``order``) through ``guard``, then ONE
    ``_commit`` of what they yielded and the next offsets. Batches and ticks (``_lock``) never
    interleave."""

    def __init__(self, guard: RecordGuard[Decoded], order: Sequence[str]) -> None:
        self.guard = guard
        self._order = list(order)
        self._lock = asyncio.Lock()

    @property
    def topic_names(self) -> list[str]:
        return list(self._order)

    async def handle_batch(self, batch: Batch) -> None:
        async with self._lock:
            results: list[R] = []
            offsets: Offsets = {}
            for tp, record in in_order(batch, self._order):
                results += await self.guard(record, self._handle) or []
                offsets[(tp.topic, tp.partition)] = record.offset + 1
            await self._commit(results, offsets)

    @abstractmethod
    async def tick(self) -> None:
        """The clock's turn (under ``_lock``, one commit)."""

    @abstractmethod
    async def _handle(self, decoded: Decoded) -> list[R]: ...

    @abstractmethod
    async def _commit(self, results: list[R], offsets: Offsets) -> None: ...


@dataclass(frozen=True)
class Built:
    """A stateful service's parts, from its ``build``: its core, its outbox relay, its other
    loops (by name) and what the ready line says (restored state)."""

    service: BatchService[Any]
    relay: OutboxRelay
    loops: dict[str, Coroutine[Any, Any, None]]
    restored: str


async def run_stateful(
    settings: StatefulSettings,
    service: str,
    build: Callable[[AsyncExitStack, Opened], Awaitable[Built]],
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run ``service`` until ``stop`` is set (or a loop fails, which re-raises). Takes the
    leadership of its scope (returns if ``stop`` is set while it stands by), opens topics,
    migrations, pool and producer (``store.startup``); ``build``s the service, positions its
    consumer, then runs its loops under ``bus.supervise``: consume, its own loops, clock ticks
    (``tick_seconds``), outbox relay. Any loop failing stops the others."""
    setup_telemetry(f"dspy-flywheel-{service}", settings)
    stop = stop or asyncio.Event()
    scope = settings.state_scope
    async with AsyncExitStack() as stack:
        if settings.leader_lock:  # the active instance's lock, on a connection of its own
            postgres, schema = settings.postgres, settings.db_schema
            lock_conn = await retrying(lambda: connect(postgres, schema), "connecting")
            stack.push_async_callback(lock_conn.close)
            key, what = lock_key(f"dspy_flywheel.{service}", scope), f"{service} scope {scope!r}"
            if not await acquire_leadership(lock_conn, key, stop, what):
                return
        pool, producer = await open_service(stack, settings, migrations=settings.migrate)
        positions = await load_offsets(pool, service, scope)
        built = await build(stack, Opened(service, settings, stop, pool, producer, positions))
        core = built.service
        consumer = await open_consumer(
            settings.kafka,
            core.topic_names,
            positions=positions,
            start_from=settings.start_from,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
        )
        stack.push_async_callback(stop_consumer, consumer)

        async def consume() -> None:
            async for batch in batches(
                consumer, timeout_ms=1000, max_records=settings.max_batch_records
            ):
                if batch:
                    await core.handle_batch(batch)

        log.info("%s service ready: scope %r, %s", service, scope, built.restored)
        tick = f"{service}.tick"
        loops = {
            f"{service}.consume": consume(),
            **built.loops,
            tick: every(settings.tick_seconds, core.tick, tick, survive_errors=False),
            f"{service}.relay": built.relay.run(),
        }
        await supervise(loops, stop, ready=ready)
        log.info("%s service stopped", service)
