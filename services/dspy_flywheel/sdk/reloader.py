"""Hot reload: follow ``program-updated`` and ``program-rollouts`` for one worker id.

Every worker instance reads both topics whole (no consumer group: each instance must see every
update). Versions from ``program-updated`` go to the slot (served at once, or kept as a canary
candidate); assignments from ``program-rollouts`` (the rollout controller's decisions: stable
version, candidate, share, pin) tell the slot what serves. On first start it catches up from the
beginning to the current end, then applies the latest assignment (or, without any, serves the
newest version that fits); after that it applies events as they arrive. Reconnects resume from
the last offset seen, so nothing is applied twice or skipped.

Each record is read under a ``bus.RecordGuard`` without dead letters: a bad one (undecodable,
not a version >= 1 with JSON objects, one the slot cannot build) is reported as ``refused``
and skipped; the optimizer owns the topic's DLQ.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from dspy_flywheel.bus.consumer import batches, open_consumer, read_to_end, stop_consumer
from dspy_flywheel.bus.guard import Record, RecordGuard
from dspy_flywheel.contracts.codec import decode
from dspy_flywheel.contracts.events import ProgramUpdated, RolloutChanged
from dspy_flywheel.contracts.validate import program_update
from dspy_flywheel.metrics.sdk import record_reload
from dspy_flywheel.rollout.records import assignment_of
from dspy_flywheel.sdk.errors import ProgramRefused
from dspy_flywheel.sdk.programs import Outcome, ProgramSlot
from dspy_flywheel.sdk.settings import WorkerSettings
from dspy_flywheel.sdk.tracing import reload_span

log = logging.getLogger(__name__)

OnOutcome = Callable[[Outcome], None]
_Update = tuple[ProgramUpdated, str | None]  # the event and its traceparent


class Reloader:
    def __init__(
        self, settings: WorkerSettings, worker_id: str, slot: ProgramSlot, on_outcome: OnOutcome
    ) -> None:
        self._kafka = settings.kafka
        self._topic = settings.topics.program_updated
        self._rollouts_topic = settings.topics.program_rollouts
        self._key = worker_id.encode()
        self._worker_id = worker_id
        self._slot = slot
        self._on_outcome = on_outcome
        self._keep = settings.history_size  # older versions kept for pin / rollback
        self._backoff_max_s = settings.reconnect_backoff_max_s
        self._positions: dict[TopicPartition, int] | None = None
        self.caught_up = threading.Event()
        self.applied = 0
        self.refused = 0
        self._guard = RecordGuard(None, self._parse)

    async def run(self) -> None:
        backoff = 0.2
        failures = 0
        while True:
            consumer = None
            try:
                consumer = await open_consumer(
                    self._kafka,
                    [self._topic, self._rollouts_topic],
                    positions=self._positions,
                    fetch_max_wait_ms=100,
                )
                if self._positions is None:
                    await self._catch_up(consumer)
                backoff, failures = 0.2, 0
                await self._follow(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                (log.warning if failures == 1 else log.debug)(
                    "%s: program-updated consumer: %s; retrying", self._worker_id, exc
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max_s)
            finally:
                if consumer is not None:
                    await stop_consumer(consumer)

    async def _catch_up(self, consumer: AIOKafkaConsumer) -> None:
        mine: deque[_Update] = deque(maxlen=self._keep + 1)
        latest: list[RolloutChanged] = []

        async def keep(parsed: _Update | RolloutChanged | None) -> None:
            if isinstance(parsed, RolloutChanged):
                latest[:] = [parsed]
            elif parsed is not None:
                mine.append(parsed)

        self._positions = await read_to_end(consumer, lambda r: self._guard(r, keep))
        candidates = list(mine)
        if latest:  # the controller's assignment says what serves
            for old, _ in candidates:
                self._remember(old)
            self._assign(latest[0])
        else:
            for old, _ in candidates[:-1]:
                self._remember(old)
            for update in reversed(candidates):  # newest first; stop at the first that fits
                if self._apply(update).status != "refused":
                    break
        self.caught_up.set()
        log.info(
            "%s: caught up on %s (%d update(s) for this worker), serving version %s",
            self._worker_id,
            self._topic,
            len(candidates),
            self._slot.current.version,
        )

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        assert self._positions is not None
        self.caught_up.set()
        async for batch in batches(consumer, timeout_ms=1000):
            for tp, records in batch.items():
                for record in records:
                    self._positions[tp] = record.offset + 1
                    await self._guard(record, self._apply_any)

    def _parse(self, record: Record) -> _Update | RolloutChanged | None:
        if record.key != self._key or record.value is None:
            return None
        try:
            decoded = decode(record.value, record.headers)
            event = decoded.event
            if isinstance(event, RolloutChanged):
                assignment_of(event)  # ValueError: not one
                return event
            if not isinstance(event, ProgramUpdated):
                return None
            program_update(event)
        except (KeyError, TypeError, ValueError) as exc:  # DecodeError, InvalidInput
            self._report(Outcome("refused", None, f"bad {record.topic} event: {exc}"))
            raise
        return event, decoded.traceparent

    async def _apply_any(self, parsed: _Update | RolloutChanged | None) -> None:
        if isinstance(parsed, RolloutChanged):
            self._assign(parsed)
        elif parsed is not None:
            self._apply(parsed)

    def _remember(self, event: ProgramUpdated) -> None:
        self._slot.remember_unloaded(
            event.version, event.program_state_json, event.signature_json, event.adapter_json
        )

    def _assign(self, changed: RolloutChanged) -> None:
        outcome = self._slot.assign(assignment_of(changed), changed.sequence)
        if outcome is not None:
            self._report(outcome)

    def _apply(self, update: _Update) -> Outcome:
        event, traceparent = update
        version = event.version
        started = time.perf_counter()
        with reload_span(self._worker_id, version, traceparent) as span:
            try:
                outcome = self._slot.offer(
                    version,
                    event.program_state_json,
                    event.signature_json,
                    event.rollout,
                    event.adapter_json,
                )
                self.applied += 1
            except ProgramRefused as exc:
                self.refused += 1
                outcome = Outcome("refused", version, str(exc))
            span.set_attribute("flywheel.reload.outcome", outcome.status)
            record_reload(self._worker_id, outcome.status, time.perf_counter() - started)
            self._report(outcome)  # the acknowledgement joins the lifecycle's trace
        return outcome

    def _report(self, outcome: Outcome) -> None:
        try:
            self._on_outcome(outcome)
        except Exception:
            log.exception("%s: reporting a program outcome failed", self._worker_id)
