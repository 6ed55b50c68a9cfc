"""Event emission off the call path: enqueue in memory, deliver from a background loop.

    call path ──submit()──▶ deque ──pump──▶ outbox ──▶ aiokafka producer (idempotent, batched)
                                              │  broker down / suspect / outbox full
                                              └──────▶ spool (disk) ──replay──▶ producer

``submit`` only appends to a deque (and, once per batch, wakes the loop): no awaits on Kafka,
no disk I/O. Executions (``submit_execution``) travel as one plain tuple each, built by the
call path without any Python-level constructor; the loop turns them into ``Pending``.
Records are built and Avro-encoded on the loop. The ``event_id`` travels with the
item from the call, so a replayed event is the same event and consumers dedupe it.
Order is kept: while anything sits in the spool, new events go behind it; events that were in
flight when the broker failed are written in front of it (``Spool.prepend``).
When callers outpace the loop (the in-memory queue is at ``queue_max``), the caller encodes the
event itself and queues the bytes, and the loop is asked to move the queue to the spool at once
(not after ``linger_ms``); one queue keeps the call order. Only what the spool has no room for
is dropped. Nothing is dropped silently: ``overflow_dropped`` counts it and it is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from dspy_flywheel.contracts.codec import encode
from dspy_flywheel.contracts.events import Event
from dspy_flywheel.sdk.delivery import Delivery, KafkaState
from dspy_flywheel.sdk.events import ExecutionPayload, ExecutionRow, execution_event
from dspy_flywheel.sdk.ioloop import IOLoop
from dspy_flywheel.sdk.settings import WorkerSettings
from dspy_flywheel.sdk.spool import Message, Spool
from dspy_flywheel.sdk.tracing import TraceOrigin, new_traceparent, resolve_traceparent

log = logging.getLogger(__name__)


Builder = Callable[[Any], Event]
Headers = tuple[tuple[str, bytes], ...]


class Pending(NamedTuple):
    """An event as the call path hands it over: the event itself, or a ``payload`` that
    ``build(payload)`` makes it from on the IO loop."""

    topic: str
    key: bytes | None
    payload: Any
    build: Builder | None
    trace: TraceOrigin  # a traceparent, or what the emitter makes one from (tracing.origin_of)
    event_id: str
    extra_headers: Headers = ()


class ExecutionRoute(NamedTuple):
    """Where a worker's executions go (the same for every call)."""

    topic: str
    key: bytes
    extra_headers: Headers = ()


def execution_pending(route: ExecutionRoute, row: ExecutionRow) -> Pending:
    """The ``Pending`` event of an execution row (built on the IO loop)."""
    payload = ExecutionPayload._make(row)
    return Pending(
        route.topic,
        route.key,
        payload,
        execution_event,
        payload.trace,
        payload.execution_id,
        route.extra_headers,
    )


@dataclass
class _Counters:
    enqueued: int = 0
    spooled: int = 0
    overflow_dropped: int = 0
    encode_errors: int = 0
    dropped_after_close: int = 0


class Emitter:
    def __init__(
        self,
        settings: WorkerSettings,
        loop: IOLoop,
        spool: Spool,
        name: str,
        kafka_state: KafkaState,
    ) -> None:
        self._settings = settings
        self._loop = loop
        self._spool = spool
        self._name = name
        self._queue: deque[Pending | ExecutionRow | Message] = deque()
        self._execution_route: ExecutionRoute | None = None
        self._queue_max = settings.queue_max
        self._asleep = True  # the pump polls while busy; asleep, the next submit wakes it
        self._closed = False
        self._counters = _Counters()
        self._last_overflow_log = 0.0
        self._overflow_lock = threading.Lock()
        self._spill_lock = threading.Lock()
        self._spill_bytes = 0  # encoded by callers, queued for the spool
        self._spill_asked = False
        self._delivery = Delivery(
            settings, spool, name, spill=self._to_spool, kafka_state=kafka_state
        )
        self._wakeup: asyncio.Event | None = None
        self._spool_written: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        loop.run(self._start())

    # -- call path (any thread) ---------------------------------------------------------------

    def route_executions(self, route: ExecutionRoute) -> None:
        """Set where ``submit_execution`` rows go (once, before the first one)."""
        self._execution_route = route

    def submit(self, item: Pending | ExecutionRow) -> None:
        if self._closed:
            self._counters.dropped_after_close += 1
            return
        queue = self._queue
        if len(queue) >= self._queue_max:  # the loop is behind: never block the caller
            self._spill_soon(item)
            return
        queue.append(item)
        self._counters.enqueued += 1
        if self._asleep:  # only the first event after a quiet second costs a wakeup syscall
            self._asleep = False
            self._loop.call_soon(self._wake)

    submit_execution = submit
    """Enqueue an ExecutionRecorded row (its execution id is its event id)."""

    def _spill_soon(self, item: Pending | ExecutionRow) -> None:
        """Queue ``item`` encoded, for the spool; drop it only if the spool has no room."""
        message = self._encode(item)
        if message is None:
            return
        size = len(message.value) + 64 * (1 + len(message.headers))
        with self._spill_lock:
            room = self._spool.max_bytes - self._spool.pending_bytes() - self._spill_bytes
            if size <= room:
                self._spill_bytes += size
                self._queue.append(message)
                self._counters.enqueued += 1
            ask, self._spill_asked = not self._spill_asked, True
        if size > room:
            self._overflow(1, "in-memory queue full and no room in the spool")
        if ask:
            self._loop.call_soon(self._drain_to_spool)

    def stats(self) -> dict[str, Any]:
        return {
            **vars(self._counters),
            "queued": len(self._queue),
            "spool_pending": self._spool.pending_records,
            "spool_bytes": self._spool.pending_bytes(),
            **self._delivery.stats(),
        }

    def close(self, timeout: float) -> None:
        """Deliver what can be delivered within ``timeout``; spool (and fsync) the rest."""
        if self._closed:
            return
        self._closed = True
        if not self._loop.alive:
            return
        try:
            self._loop.run(self._aclose(time.monotonic() + timeout), timeout + 10)
        except Exception:
            log.exception("%s: emitter close failed", self._name)

    # -- loop side ----------------------------------------------------------------------------

    async def _start(self) -> None:
        self._wakeup = asyncio.Event()
        self._spool_written = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._pump(), name=f"{self._name}-pump"),
            asyncio.create_task(self._sync_timer(), name=f"{self._name}-fsync"),
            *self._delivery.start(),
        ]

    def _wake(self) -> None:
        assert self._wakeup is not None
        self._wakeup.set()

    async def _pump(self) -> None:
        """Poll the queue every linger_ms while events flow; sleep after a quiet second."""
        assert self._wakeup is not None
        linger = max(self._settings.linger_ms, 1) / 1000
        idle_polls = 0
        while True:
            await asyncio.sleep(linger)
            if self._drain():
                idle_polls = 0
                continue
            idle_polls += 1
            if idle_polls * linger < 1.0:
                continue
            self._wakeup.clear()
            self._asleep = True  # set first, then look again: a racing submit is not missed
            if self._drain():
                self._asleep = False
                idle_polls = 0
                continue
            # Set by the next submit(); the timeout is a safety net for a lost wakeup.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), 1.0)
            self._asleep = False
            idle_polls = 0

    def _drain_to_spool(self) -> None:
        with self._spill_lock:
            self._spill_bytes, self._spill_asked = 0, False
        self._drain()

    def _drain(self) -> bool:
        items: list[Pending | ExecutionRow | Message] = []
        queue = self._queue
        while queue:
            items.append(queue.popleft())
        if items:
            self._route([m for m in map(self._encode, items) if m is not None])
        return bool(items)

    def _encode(self, item: Pending | ExecutionRow | Message) -> Message | None:
        if isinstance(item, Message):  # encoded by a caller (_spill_soon)
            return item
        if not isinstance(item, Pending):
            assert self._execution_route is not None, "route_executions() before submit_execution()"
            item = execution_pending(self._execution_route, item)
        traceparent = resolve_traceparent(item.trace) or new_traceparent()
        try:
            event = item.build(item.payload) if item.build is not None else item.payload
            encoded = encode(event, traceparent=traceparent, event_id=item.event_id)
        except Exception as exc:
            self._counters.encode_errors += 1
            log.error("%s: dropping an unencodable event for %s: %s", self._name, item.topic, exc)
            return None
        headers = (*encoded.headers, *item.extra_headers)
        return Message(item.topic, item.key, encoded.value, headers, item.event_id)

    def _route(self, messages: list[Message]) -> None:
        if not messages:
            return
        if self._delivery.accepts_direct(len(messages)):
            self._delivery.enqueue(messages)
            return
        self._to_spool(self._delivery.take_outbox())
        self._to_spool(messages)
        self._delivery.kick()

    def _to_spool(self, messages: list[Message]) -> None:
        if not messages:
            return
        written, refused = self._spool.append(messages)
        self._counters.spooled += written
        if written and self._spool_written is not None:
            self._spool_written.set()
        if refused:
            self._overflow(refused, "spool full")

    def _overflow(self, count: int, why: str) -> None:
        with self._overflow_lock:  # callers on many threads: the count must be exact
            self._counters.overflow_dropped += count
            now = time.monotonic()
            if now - self._last_overflow_log <= 10:
                return
            self._last_overflow_log = now
            log.error(
                "%s: dropped %d event(s): %s (total dropped %d; see worker.stats())",
                self._name,
                count,
                why,
                self._counters.overflow_dropped,
            )

    async def _sync_timer(self) -> None:
        """fsync the spool at most fsync_interval_ms after a write; asleep while nothing is
        written (a timer ticking on an idle worker costs CPU on every tick)."""
        assert self._spool_written is not None
        interval = self._settings.fsync_interval_ms / 1000
        while True:
            await self._spool_written.wait()
            await asyncio.sleep(interval)
            self._spool_written.clear()
            if self._spool.dirty:
                await asyncio.to_thread(self._spool.sync)

    async def _aclose(self, deadline: float) -> None:
        self._drain()
        self._tasks[0].cancel()  # the pump: nothing new arrives after close
        await self._delivery.drain(deadline)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._to_spool(await self._delivery.stop(deadline))
        self._drain()  # anything a racing submit() slipped in: to the spool
        self._spool.close()
