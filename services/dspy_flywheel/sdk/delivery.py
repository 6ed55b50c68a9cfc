"""Getting encoded events to Kafka: one idempotent producer, the outbox, spool replay.

Runs on the worker's IO loop only. States::

    no producer ──connect ok──▶ up ──a send fails──▶ no producer (backoff, reconnect)
                                 │ a batch unacknowledged for suspect_after_ms: "suspect"
                                 ▼ (new events go to the spool until a batch is acknowledged)

While the spool holds anything, it is replayed before the outbox is used again, so the order
of a worker's events is the order of its calls. A replayed chunk commits the spool cursor only
over its acknowledged prefix; acknowledged events after a failure are remembered by event_id
and skipped on the next attempt. A batch in flight when Kafka goes away is not abandoned: the
idempotent producer retries it (same producer id and sequence, so the broker drops a copy it
already has) until Kafka is back. Only a batch still unacknowledged when the worker closes is
spooled again, and may then arrive twice; consumers dedupe by ``event_id``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError, UnsupportedVersionError

from dspy_flywheel.bus.errors import RECORD_FAULTS
from dspy_flywheel.bus.quiet import no_payloads_in_logs
from dspy_flywheel.sdk.batches import Partitioner, record_batches
from dspy_flywheel.sdk.settings import WorkerSettings
from dspy_flywheel.sdk.spool import Message, Spool

log = logging.getLogger(__name__)

# Errors no retry can fix: the event is dropped (counted as rejected) instead of spooled forever.
# A worker cannot hold events until an operator fixes the broker's ACLs or version, so those
# faults drop them too (the services' outboxes keep such rows: bus.outbox).
_POISON = (*RECORD_FAULTS, TopicAuthorizationFailedError, UnsupportedVersionError)


Spill = Callable[[list[Message]], None]


class KafkaState:
    """What the worker's Kafka clients know: topics checked (``ready``), and whether the broker
    answered the last attempt (``reachable``: None until someone tried)."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.reachable: bool | None = None
        self.last_error: str | None = None


class Delivery:
    def __init__(
        self,
        settings: WorkerSettings,
        spool: Spool,
        name: str,
        *,
        spill: Spill,
        kafka_state: KafkaState,
    ) -> None:
        self._settings = settings
        self._spool = spool
        self._name = name
        self._spill = spill  # append to the spool, counting what does not fit
        self._kafka_state = kafka_state
        self._producer: AIOKafkaProducer | None = None
        self._outbox: deque[Message] = deque()
        self._inflight: list[Message] = []  # from the outbox, handed to the producer
        self._replaying = 0
        self._tail_claimed = False  # the replay chunk in flight holds the spool's last record
        self._suspect = False
        self._stopping = False
        self._delivered_ids: set[str] = set()
        self._partitioner = Partitioner()
        self._failed_deliveries = 0  # since the last acknowledged batch
        # aiokafka retries an idempotent batch until it is acknowledged; giving up earlier could
        # re-send events the broker already has. This is only a last-resort bound.
        self._give_up_after_s = max(2 * settings.request_timeout_ms / 1000, 1.0)
        self._kick = asyncio.Event()
        self._need_producer = asyncio.Event()
        self._need_producer.set()
        self.sent = 0
        self.replayed = 0
        self.rejected = 0
        self.send_failures = 0
        self.connects = 0
        self.last_error: str | None = None

    def start(self) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(self._connector(), name=f"{self._name}-connect"),
            asyncio.create_task(self._sender(), name=f"{self._name}-send"),
        ]

    def stats(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "replayed": self.replayed,
            "rejected": self.rejected,
            "send_failures": self.send_failures,
            "in_flight": len(self._inflight) + self._replaying,
            "outbox": len(self._outbox),
            "broker": "suspect" if self._suspect else ("up" if self._producer else "down"),
            "connects": self.connects,
            "last_error": self.last_error or self._kafka_state.last_error,
        }

    # -- routing (called by the pump) ---------------------------------------------------------

    def accepts_direct(self, count: int) -> bool:
        return (
            self._producer is not None
            and not self._suspect
            and not self._stopping
            and (self._tail_claimed or not self._spool.has_pending())
            and len(self._outbox) + count <= self._settings.queue_max  # as the in-memory queue
        )

    def enqueue(self, messages: list[Message]) -> None:
        self._outbox.extend(messages)
        self._kick.set()

    def take_outbox(self) -> list[Message]:
        taken = list(self._outbox)
        self._outbox.clear()
        return taken

    def kick(self) -> None:
        self._kick.set()

    # -- connecting ---------------------------------------------------------------------------

    async def _connector(self) -> None:
        backoff = 0.2
        failures = 0
        await self._kafka_state.ready.wait()
        while True:
            await self._need_producer.wait()
            if self._failed_deliveries:  # connected, then failed to deliver: don't spin
                await asyncio.sleep(
                    min(
                        0.2 * 2 ** (self._failed_deliveries - 1),
                        self._settings.reconnect_backoff_max_s,
                    )
                )
            no_payloads_in_logs()
            producer = AIOKafkaProducer(
                **self._settings.kafka.client_kwargs(),
                enable_idempotence=True,
                acks="all",
                linger_ms=0,  # batches arrive built (the pump lingers): send them at once
                request_timeout_ms=self._settings.request_timeout_ms,
                max_batch_size=256 * 1024,
            )
            try:
                await asyncio.wait_for(producer.start(), self._settings.connect_timeout_s)
            except Exception as exc:
                failures += 1
                self._kafka_state.reachable = False
                self.last_error = f"connect: {type(exc).__name__}: {exc}"
                (log.warning if failures == 1 else log.debug)(
                    "%s: Kafka unreachable (%s); events go to the spool, retrying", self._name, exc
                )
                await _stop_quietly(producer, 1.0)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._settings.reconnect_backoff_max_s)
                continue
            if failures:
                log.info("%s: Kafka reachable again; replaying the spool", self._name)
            failures = 0
            self._kafka_state.reachable = True
            backoff = 0.2
            self.connects += 1
            self._partitioner.forget()  # topics may have grown partitions meanwhile
            self._producer = producer
            self._suspect = False
            self._need_producer.clear()
            self._kick.set()

    async def _drop_producer(self, error: BaseException) -> None:
        producer, self._producer = self._producer, None
        self.send_failures += 1
        self._failed_deliveries += 1
        self._kafka_state.reachable = False  # until a new connection proves otherwise
        self.last_error = f"send: {type(error).__name__}: {error}"
        log.warning("%s: delivery failed (%s); spooling until Kafka is back", self._name, error)
        self._need_producer.set()
        if producer is not None:
            asyncio.get_running_loop().create_task(_stop_quietly(producer, 5.0))

    # -- sending ------------------------------------------------------------------------------

    async def _sender(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            while self._producer is not None:
                if self._spool.has_pending():
                    ok = await self._replay_chunk()
                elif self._outbox:
                    ok = await self._send_outbox_batch()
                else:
                    break
                if not ok:
                    break

    async def _send_outbox_batch(self) -> bool:
        batch = [
            self._outbox.popleft() for _ in range(min(len(self._outbox), self._settings.batch_max))
        ]
        self._inflight = batch  # left set if cancelled: stop() spools it
        acked, error = await self._deliver(batch)
        self._inflight = []
        self.sent += sum(acked)
        if error is None:
            return True
        self._spool.prepend([m for m, ok in zip(batch, acked, strict=True) if not ok])
        self._spill(self.take_outbox())  # behind the failed ones, before newer events
        await self._drop_producer(error)
        return False

    async def _replay_chunk(self) -> bool:
        records = await asyncio.to_thread(self._spool.read, self._settings.batch_max)
        if not records:
            return False
        # Nothing appended since this read: newer events may stay in memory (the outbox is
        # only sent after this chunk), which ends spool mode even under steady load.
        self._tail_claimed = len(records) == self._spool.pending_records
        todo = [m for m, _ in records if m.event_id not in self._delivered_ids]
        self._replaying = len(todo)  # still in the spool: nothing to save if cancelled
        try:
            acked, error = await self._deliver(todo)
        finally:
            self._replaying = 0
            self._tail_claimed = False
        ok_ids = {m.event_id for m, ok in zip(todo, acked, strict=True) if ok}
        self.replayed += len(ok_ids)
        committed, position = 0, None
        for message, pos in records:
            if message.event_id in ok_ids or message.event_id in self._delivered_ids:
                self._delivered_ids.discard(message.event_id)
                ok_ids.discard(message.event_id)
                committed, position = committed + 1, pos
            else:
                break
        self._delivered_ids |= ok_ids  # acknowledged after a gap: skip them next time
        if position is not None:
            self._spool.commit(position, committed)
        if error is not None:
            await self._drop_producer(error)
            return False
        return True

    async def _deliver(self, batch: list[Message]) -> tuple[list[bool], BaseException | None]:
        """Send ``batch``; per message whether the broker acknowledged it, and the first error."""
        producer = self._producer
        acked = [False] * len(batch)
        if not batch:
            return acked, None
        if producer is None:
            return acked, ConnectionError("no producer")
        error: BaseException | None = None
        try:
            groups = await self._partitioner.group(producer, batch)
        except Exception as exc:
            return acked, exc
        sent: list[tuple[asyncio.Future[Any], list[int]]] = []
        for (topic, partition), indexes in groups.items():
            try:
                for builder, members in record_batches(producer, batch, indexes):
                    future = await producer.send_batch(builder, topic, partition=partition)
                    sent.append((future, members))
            except Exception as exc:
                error = exc
                break
        if sent:
            futures = [f for f, _ in sent]
            _done, pending = await asyncio.wait(
                futures, timeout=self._settings.suspect_after_ms / 1000
            )
            if pending:
                self._suspect = True  # new events go to the spool meanwhile
                _done, pending = await asyncio.wait(pending, timeout=self._give_up_after_s)
        for future, indexes in sent:
            if not future.done():  # the producer kept retrying: give up, spool, reconnect
                error = error or TimeoutError(f"no acknowledgement in {self._give_up_after_s:.0f}s")
                continue
            failure = future.exception()
            if failure is None or isinstance(failure, _POISON):
                for i in indexes:
                    acked[i] = True
                if failure is not None:  # never deliverable: count it, don't retry it forever
                    self.rejected += len(indexes)
                    log.error(
                        "%s: Kafka rejected %d event(s): %s", self._name, len(indexes), failure
                    )
            elif error is None:
                error = failure
        if error is None:
            self._suspect = False
            self._failed_deliveries = 0
        return acked, error

    # -- closing ------------------------------------------------------------------------------

    async def drain(self, deadline: float) -> None:
        """Wait until outbox and spool are delivered, Kafka is down, or the deadline passes."""
        self._kick.set()
        connect_deadline = min(deadline, time.monotonic() + 2.0)
        while time.monotonic() < deadline:
            if self._producer is None:
                if self._kafka_state.reachable is False or time.monotonic() > connect_deadline:
                    return  # Kafka is down (or not answering): what is left goes to the spool
                await asyncio.sleep(0.01)  # still connecting
                continue
            idle = not (self._outbox or self._inflight or self._replaying)
            if idle and not self._spool.has_pending():
                return
            await asyncio.sleep(0.01)

    async def stop(self, deadline: float) -> list[Message]:
        """Stop sending; what was in flight goes in front of the spool. Returns the outbox."""
        self._stopping = True
        if self._inflight:
            self._spool.prepend(self._inflight)  # may have arrived: consumers dedupe by event_id
            self._inflight = []
        producer, self._producer = self._producer, None
        if producer is not None:
            await _stop_quietly(producer, max(0.5, deadline - time.monotonic()))
        return self.take_outbox()


async def _stop_quietly(producer: AIOKafkaProducer, limit_s: float) -> None:
    try:
        await asyncio.wait_for(producer.stop(), limit_s)
    except Exception as exc:  # closing a producer to a dead broker: nothing left to do
        log.debug("producer stop: %s", exc)
