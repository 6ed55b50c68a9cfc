"""Register an optimized worker's TriggerConfig on the compacted config topic, once per start.

Precedence (the compacted topic holds one record per worker id):

* no record yet, or the last one was written by the SDK (``updated_by == "sdk"``): the
  decorator's arguments are the config; published when they differ from what is there.
* the last record was written by anyone else (an operator via CLI / manager): the operator's
  policy, thresholds and optimizer settings are kept; only what the code owns
  (``worker_type``, ``program_ref``, ``metric_ref``) is refreshed.

Runs on the worker's IO loop and retries until Kafka answers; the record itself is sent through
the worker's emitter (so it is spooled like any event if Kafka goes away in between).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from dspy_flywheel.bus.compacted import read_compacted
from dspy_flywheel.bus.guard import Record
from dspy_flywheel.contracts.codec import decode
from dspy_flywheel.contracts.events import TriggerConfig
from dspy_flywheel.settings import KafkaSettings

log = logging.getLogger(__name__)

CODE_OWNED = ("worker_type", "program_ref", "metric_ref")


def merge_config(existing: TriggerConfig | None, ours: TriggerConfig) -> TriggerConfig | None:
    """The config to publish given the current one (None when nothing needs publishing)."""
    if existing is None:
        return ours
    if existing.updated_by.startswith("sdk"):
        wanted = ours
    else:
        owned = {k: getattr(ours, k) for k in CODE_OWNED}
        wanted = replace(existing, **owned, timestamp_ms=ours.timestamp_ms)
    same = replace(existing, timestamp_ms=0) == replace(wanted, timestamp_ms=0)  # time aside
    return None if same else wanted


async def read_current(kafka: KafkaSettings, topic: str, worker_id: str) -> TriggerConfig | None:
    """The latest TriggerConfig for ``worker_id`` (None if absent or deleted); a record that
    does not decode to one is logged and skipped."""

    def parse(record: Record) -> tuple[str, TriggerConfig | None]:
        key = (record.key or b"").decode(errors="replace")
        if key != worker_id or record.value is None:  # None: a tombstone, the config deleted
            return key, None
        event = decode(record.value, record.headers).event
        if not isinstance(event, TriggerConfig):
            raise TypeError(f"{event.event_type} on the trigger config topic for {worker_id}")
        return key, event

    return (await read_compacted(kafka, topic, parse)).get(worker_id)


async def register(
    kafka: KafkaSettings,
    topic: str,
    worker_id: str,
    ours: Callable[[], TriggerConfig],
    publish: Callable[[TriggerConfig], None],
    *,
    backoff_max_s: float,
) -> TriggerConfig:
    """Read, merge, publish; retries until Kafka answers. Returns the config now in effect."""
    backoff = 0.2
    while True:
        try:
            existing = await read_current(kafka, topic, worker_id)
            break
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("%s: trigger config not readable yet: %s", worker_id, exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, backoff_max_s)
    config = ours()
    merged = merge_config(existing, config)
    if merged is None:
        log.info("%s: trigger config up to date", worker_id)
        assert existing is not None
        return existing
    if existing is not None and merged is not config:
        log.info("%s: keeping the operator's trigger config; refreshing %s", worker_id, CODE_OWNED)
    publish(merged)
    return merged
