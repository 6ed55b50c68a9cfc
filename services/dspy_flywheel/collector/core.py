"""The collector's engine-independent core: raw Kafka messages in, one DB transaction out.

``Collector.process(raws)`` parses, anonymizes, joins, filters and stores one batch and returns
when the transaction has committed; the engine (faust agent or aiokafka loop) acknowledges the
offsets only after that. ``process_until_done`` retries a failing batch with backoff forever:
a batch that cannot be written stalls its partitions instead of being skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence

import asyncpg

from dspy_flywheel.collector import metrics
from dspy_flywheel.collector.events import Parsed, RawMessage, Rejected, parse
from dspy_flywheel.collector.placeholders import PersistentPlaceholderStore, PlaceholderConflict
from dspy_flywheel.collector.policy import PolicyBook
from dspy_flywheel.collector.prepare import Preparer
from dspy_flywheel.collector.sink import BatchResult, PublishRejects, Sink
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.privacy import Anonymizer
from dspy_flywheel.security.crypto import Cipher

log = logging.getLogger(__name__)

PLACEHOLDER_ATTEMPTS = 3
MAX_BACKOFF_S = 30.0


class Collector:
    def __init__(
        self,
        pool: asyncpg.Pool,
        cipher: Cipher,
        policies: PolicyBook,
        publish_rejects: PublishRejects,
        topics: Topics,
        anonymizer: Anonymizer | None = None,
    ) -> None:
        self._pool = pool
        self._policies = policies
        self._publish_rejects = publish_rejects
        self.placeholders = PersistentPlaceholderStore()
        anonymizer = anonymizer or Anonymizer(cipher.pii_key, store=self.placeholders)
        self._preparer = Preparer(anonymizer, cipher)
        self._sink = Sink(pool, cipher, self.placeholders, policies)
        self._event_types = {
            topics.executions: "ExecutionRecorded",
            topics.feedback: "FeedbackRecorded",
        }

    def _parse(self, raw: RawMessage) -> Parsed:
        expected = self._event_types.get(raw.topic)
        if expected is None:
            return Rejected(raw, "unexpected_topic", f"collector does not read {raw.topic!r}")
        return parse(raw, expected)

    async def process(self, raws: Sequence[RawMessage]) -> BatchResult:
        started = time.perf_counter()
        await self._policies.refresh(self._pool)
        for _ in range(PLACEHOLDER_ATTEMPTS):
            parsed = [(raw, self._parse(raw)) for raw in raws]
            scopes = {p.worker_id for _, p in parsed if not isinstance(p, Rejected)}
            await self.placeholders.ensure_loaded(self._pool, scopes)
            items = self._preparer.prepare(parsed)
            try:
                result = await self._sink.write(items, self._publish_rejects)
            except PlaceholderConflict as exc:
                log.warning("%s; reloading placeholders and redoing the batch", exc)
                self.placeholders.forget(scopes)
                self._preparer.clear_cache()
                continue
            self._record(raws, result, time.perf_counter() - started)
            return result
        raise PlaceholderConflict(f"placeholder numbering kept changing ({PLACEHOLDER_ATTEMPTS}x)")

    async def process_until_done(self, raws: Sequence[RawMessage]) -> BatchResult:
        delay = 0.5
        while True:
            try:
                return await self.process(raws)
            except Exception:
                log.exception("batch of %d events failed; retrying in %.1fs", len(raws), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)

    def _record(self, raws: Sequence[RawMessage], result: BatchResult, seconds: float) -> None:
        by_topic = Counter(r.topic for r in raws)
        for topic, n in by_topic.items():
            kind = self._event_types.get(topic, "unknown")
            metrics.events_in.add(n, {"event_type": kind})
        metrics.examples_stored.add(result.stored)
        metrics.labels_updated.add(result.updated)
        metrics.batch_seconds.record(seconds)
        for (worker, reason), n in result.drops.items():
            metrics.drops.add(n, {"reason": reason, "worker_id": worker})
        if result.drops:
            summary = ", ".join(f"{r}={n} ({w or '?'})" for (w, r), n in sorted(result.drops.items()))
            log.info("dropped in batch: %s", summary)
        log.debug(
            "batch: %d events (%d new), %d stored, %d labels updated, %d to DLQ in %.3fs",
            result.events, result.fresh, result.stored, result.updated, result.rejected, seconds)
