"""The collector's engine-independent core: raw Kafka messages in, one DB transaction out.

``Collector.process(raws)`` parses and anonymizes a batch, lets the join window hold unmatched
halves for a moment, and writes the rest in one transaction; it returns the messages that are
durable, and the engine (faust agent or aiokafka loop) acknowledges exactly those.
A write that fails because the database or the broker is away is retried with backoff until it
works (its partitions wait; nothing is skipped). A write that fails because of a record is
split in halves down to that record, which goes to the DLQ as ``unwritable``; the rest is
stored. ``until_done`` retries the other steps (reading placeholders, policies).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from dspy_flywheel.bus.guard import Retry, retrying
from dspy_flywheel.collector.events import Carried, Parsed, RawMessage, Rejected, parse
from dspy_flywheel.collector.placeholders import PersistentPlaceholderStore, PlaceholderConflict
from dspy_flywheel.collector.policy import PolicyBook
from dspy_flywheel.collector.prepare import Preparer
from dspy_flywheel.collector.sink import BatchResult, PublishRejects, Sink
from dspy_flywheel.collector.window import Item, JoinWindow
from dspy_flywheel.contracts.events import ExecutionRecorded, FeedbackRecorded
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.metrics import collector as metrics
from dspy_flywheel.privacy import Anonymizer
from dspy_flywheel.security.crypto import Cipher

log = logging.getLogger(__name__)

T = TypeVar("T")
PLACEHOLDER_ATTEMPTS = 3
PREPARE_CHUNK = 200


@dataclass(frozen=True, slots=True)
class Prepared:
    items: list[Item]
    generation: int


MAX_BACKOFF_S = 30.0
_WRITE_RETRY = Retry(attempts=None, first_delay_s=0.5, max_delay_s=MAX_BACKOFF_S)


class Collector:
    def __init__(
        self,
        pool: asyncpg.Pool,
        cipher: Cipher,
        policies: PolicyBook,
        publish_rejects: PublishRejects,
        topics: Topics,
        *,
        hold_s: float = 1.0,
        max_held: int = 20_000,
        anonymizer: Anonymizer | None = None,
    ) -> None:
        self._pool = pool
        self._policies = policies
        self._publish_rejects = publish_rejects
        self.placeholders = PersistentPlaceholderStore()
        anonymizer = anonymizer or Anonymizer(cipher.pii_key, store=self.placeholders)
        self._preparer = Preparer(anonymizer, cipher)
        self._sink = Sink(pool, cipher, self.placeholders, policies)
        self._window = JoinWindow(hold_s, max_held)
        self._lock = asyncio.Lock()
        self._event_types: dict[str, Carried] = {
            topics.executions: ExecutionRecorded,
            topics.feedback: FeedbackRecorded,
        }

    @property
    def held(self) -> int:
        return len(self._window)

    def lowest_held_offsets(self) -> dict[tuple[str, int], int]:
        return self._window.lowest_held_offsets()

    def _parse(self, raw: RawMessage) -> Parsed:
        expected = self._event_types.get(raw.topic)
        if expected is None:
            return Rejected(raw, "unexpected_topic", f"collector does not read {raw.topic!r}")
        return parse(raw, expected)

    async def prepare(self, raws: Sequence[RawMessage]) -> Prepared:
        """Parse and anonymize (CPU only, yields to the loop between chunks); no DB writes."""
        generation = self.placeholders.generation
        parsed = [(raw, self._parse(raw)) for raw in raws]
        scopes = {p.worker_id for _, p in parsed if not isinstance(p, Rejected)}
        await self.placeholders.ensure_loaded(self._pool, scopes)
        items: list[Item] = []
        for start in range(0, len(parsed), PREPARE_CHUNK):
            chunk = parsed[start : start + PREPARE_CHUNK]
            prepared = self._preparer.prepare(chunk)
            items.extend(zip((raw for raw, _ in chunk), prepared, strict=True))
            await asyncio.sleep(0)  # let a concurrent write's DB round trips proceed
        return Prepared(items, generation)

    async def write(self, prepared: Prepared) -> list[RawMessage]:
        """Offer a prepared batch to the join window and write what it releases.

        Returns the messages now durable (this batch's or earlier held ones); messages not
        returned are held in memory and come back from a later call.
        """
        async with self._lock:
            if prepared.generation != self.placeholders.generation:  # numbering reloaded
                prepared = await self.prepare([raw for raw, _ in prepared.items])
            await self._policies.refresh(self._pool)
            return await self._write(self._window.offer(prepared.items, time.monotonic()))

    async def process(self, raws: Sequence[RawMessage]) -> list[RawMessage]:
        return await self.write(await self.prepare(raws))

    async def release_aged(self) -> list[RawMessage]:
        async with self._lock:
            return await self._write(self._window.take_aged(time.monotonic()))

    async def flush(self) -> list[RawMessage]:
        """Write everything held (shutdown, partitions revoked)."""
        async with self._lock:
            return await self._write(self._window.take_all())

    async def _write(self, items: list[Item]) -> list[RawMessage]:
        """Write ``items`` (released by the window: nothing else holds them any more).

        A failure retrying can fix (database or broker away) is retried here with backoff
        until it works. Any other failure is one record's: the batch is split in halves, each
        written on its own, down to the record, which is dead-lettered (``unwritable``) while
        the others are stored.
        """
        try:
            return await retrying(
                lambda: self._write_once(items), f"writing {len(items)} events", _WRITE_RETRY
            )
        except Exception as exc:  # not retriable: one record's
            return await self._split(items, exc)

    async def _split(self, items: list[Item], exc: Exception) -> list[RawMessage]:
        if len(items) > 1:
            half = len(items) // 2
            return await self._write(items[:half]) + await self._write(items[half:])
        raw, parsed = items[0]
        if isinstance(parsed, Rejected):
            raise exc  # not even its dead letter can be written: nothing else to try
        log.error("%s cannot be written, dead-lettering it: %r", raw.coordinates, exc)
        return await self._write(
            [(raw, Rejected(raw, "unwritable", f"{type(exc).__name__}: {exc}"))]
        )

    async def _write_once(self, items: list[Item]) -> list[RawMessage]:
        if not items:
            return []
        started = time.perf_counter()
        for _ in range(PLACEHOLDER_ATTEMPTS):
            try:
                result = await self._sink.write([p for _, p in items], self._publish_rejects)
            except PlaceholderConflict as exc:
                scopes = {p.worker_id for _, p in items if not isinstance(p, Rejected)}
                log.warning("%s; reloading placeholders and redoing the batch", exc)
                self.placeholders.forget(scopes)
                self._preparer.clear_cache()
                items = (await self.prepare([raw for raw, _ in items])).items
                continue
            raws = [raw for raw, _ in items]
            self._record(raws, result, time.perf_counter() - started)
            return raws
        raise PlaceholderConflict(f"placeholder numbering kept changing ({PLACEHOLDER_ATTEMPTS}x)")

    async def until_done(self, step: Callable[[], Awaitable[T]], what: str) -> T:
        """Retry ``step`` (e.g. ``lambda: collector.process(raws)``) with backoff until it works
        (writes retry and split by themselves; this covers reading placeholders and policies)."""
        delay = 0.5
        while True:
            try:
                return await step()
            except Exception:
                log.exception("%s failed; retrying in %.1fs", what, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)

    def _record(self, raws: Sequence[RawMessage], result: BatchResult, seconds: float) -> None:
        by_topic = Counter(r.topic for r in raws)
        for topic, n in by_topic.items():
            carried = self._event_types.get(topic)
            kind = carried.event_type if carried is not None else "unknown"
            metrics.events_in.add(n, {"flywheel.event_type": kind})
        metrics.examples_stored.add(result.stored)
        metrics.labels_updated.add(result.updated)
        metrics.batch_seconds.record(seconds)
        for (worker, reason), n in result.drops.items():
            metrics.drops.add(n, {"flywheel.drop.reason": reason, "flywheel.worker_id": worker})
        if result.fresh < result.events:
            log.info(
                "skipped %d redelivered events already applied (idempotency gate)",
                result.events - result.fresh,
            )
        if result.drops:
            summary = ", ".join(
                f"{r}={n} ({w or '?'})" for (w, r), n in sorted(result.drops.items())
            )
            log.info("dropped in batch: %s", summary)
        log.debug(
            "batch: %d events (%d new), %d stored, %d labels updated, %d to DLQ in %.3fs",
            result.events,
            result.fresh,
            result.stored,
            result.updated,
            result.rejected,
            seconds,
        )
