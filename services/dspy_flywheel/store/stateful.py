"""Skeleton of a service that reads every partition itself and keeps its state in PostgreSQL.

The trigger and the rollout service are built on it: each instance reads whole topics (no
consumer group), one instance per scope is active (a PostgreSQL advisory lock; the others stand
by), and each batch ends in ONE transaction holding the changed worker states, the next offsets
(``<service>_offsets``) and the outbox rows. A crash resumes from a consistent point.

``StatefulSettings``: the knobs both share. ``run_stateful``: the composition both share (each
service's ``app.run`` passes its ``build``). ``BatchService``: the records of a batch in topic
order through the record guard, then one commit; ticks between batches. ``StateStore``: the
worker states and offsets of that commit.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar

import asyncpg
from aiokafka import AIOKafkaProducer
from pydantic import Field

from dspy_flywheel.bus import (
    Batch,
    DeadLetters,
    OutboxEvent,
    OutboxRelay,
    Record,
    RecordGuard,
    batches,
    every,
    in_order,
    open_consumer,
    retrying,
    stop_consumer,
    supervise,
)
from dspy_flywheel.bus.compacted import CompactedFollower
from dspy_flywheel.bus.letters import sent_sources
from dspy_flywheel.contracts.codec import Decoded
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.metrics.setup import setup_telemetry
from dspy_flywheel.settings import FlywheelSettings
from dspy_flywheel.store.leader import acquire_leadership, lock_key
from dspy_flywheel.store.offsets import Offsets, load_offsets, save_offsets
from dspy_flywheel.store.outbox import OutboxTable
from dspy_flywheel.store.pool import connect, placeholders
from dspy_flywheel.store.startup import open_service

log = logging.getLogger(__name__)
R = TypeVar("R")  # what handling one record yields for the batch's commit
T = TypeVar("T")  # a config topic's value


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

    async def follow_config(
        self, stack: AsyncExitStack, topic: str, parse: Callable[[Record], tuple[str, T | None]]
    ) -> tuple[CompactedFollower[T], dict[str, T]]:
        """The compacted config ``topic``'s current values and its follower (stopped with
        ``stack``). Its DLQ is this service's: a record already dead-lettered (by an earlier
        start) is not sent again."""
        sent = await sent_sources(self.settings.kafka, topic)
        follower = CompactedFollower(
            self.settings.kafka,
            topic,
            parse,
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            dead_letters=DeadLetters(self.producer, self.service, already_sent=sent),
        )
        stack.push_async_callback(follower.stop)
        return follower, await follower.start()

    def relay(self, table: str, on_sent: Callable[[OutboxEvent], None]) -> OutboxRelay:
        """The relay of this scope's rows of the outbox ``table``."""
        outbox = OutboxTable(self.pool, table, self.settings.state_scope)
        return OutboxRelay(outbox, self.producer, poll_s=1.0, on_sent=on_sent)


class StateStore:
    """A stateful service's worker states (``<service>_state``: ``COLUMNS`` per worker of the
    scope) and offsets, saved in the transaction of its batch."""

    SERVICE: ClassVar[str]
    COLUMNS: ClassVar[tuple[str, ...]] = ("state",)

    def __init__(self, pool: asyncpg.Pool, scope: str) -> None:
        self.pool = pool
        self.scope = scope

    async def _stored_states(self) -> dict[str, Any]:
        """Each worker's stored ``state`` (JSON)."""
        rows = await self.pool.fetch(
            f"SELECT worker_id, state FROM {self.SERVICE}_state WHERE scope = $1", self.scope
        )
        return {r["worker_id"]: r["state"] for r in rows}

    async def _save_states(
        self, conn: asyncpg.Connection, states: Mapping[str, Sequence[Any]], offsets: Offsets
    ) -> None:
        """Upsert ``states`` (worker id: its ``COLUMNS``' values) and save ``offsets``."""
        if states:
            columns = ", ".join(self.COLUMNS)
            updates = "".join(f"{c} = EXCLUDED.{c}, " for c in self.COLUMNS)
            await conn.executemany(
                f"""INSERT INTO {self.SERVICE}_state (scope, worker_id, {columns}, updated_at)
                   VALUES ({placeholders(2 + len(self.COLUMNS))}, now())
                   ON CONFLICT (scope, worker_id) DO UPDATE SET {updates}updated_at = now()""",
                [(self.scope, w, *values) for w, values in states.items()],
            )
        await save_offsets(conn, self.SERVICE, self.scope, offsets)


class BatchService(ABC, Generic[R]):
    """Handles a batch: its records in topic order (``ORDER``: ``Topics`` fields) through
    ``guard``, then ONE ``_commit`` of what they yielded and the next offsets (after which it
    calls ``wake_relay`` when it queued events). Batches and ticks (``_lock``) never
    interleave."""

    ORDER: ClassVar[tuple[str, ...]]

    def __init__(
        self, guard: RecordGuard[Decoded], topics: Topics, wake_relay: Callable[[], None]
    ) -> None:
        self.guard = guard
        self.topics = topics
        self.wake_relay = wake_relay
        self.topic_names = [getattr(topics, name) for name in self.ORDER]
        self._lock = asyncio.Lock()

    async def handle_batch(self, batch: Batch) -> None:
        async with self._lock:
            results: list[R] = []
            offsets: Offsets = {}
            for tp, record in in_order(batch, self.topic_names):
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
            f"{service}.relay": built.relay.run(stop),
        }
        await supervise(loops, stop, ready=ready)
        log.info("%s service stopped", service)
