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

from dspy_flywheel.bus.consumer import open_consumer, read_to_end, stop_consumer
from dspy_flywheel.bus.guard import Record
from dspy_flywheel.contracts.codec import DecodeError, decode
from dspy_flywheel.contracts.events import TriggerConfig, field_names
from dspy_flywheel.settings import KafkaSettings

log = logging.getLogger(__name__)

CODE_OWNED = ("worker_type", "program_ref", "metric_ref")
_IGNORED_IN_DIFF = ("timestamp_ms",)


def merge_config(existing: TriggerConfig | None, ours: TriggerConfig) -> TriggerConfig | None:
    """The config to publish given the current one (None when nothing needs publishing)."""
    if existing is None:
        return ours
    if existing.updated_by.startswith("sdk"):
        wanted = ours
    else:
        owned = {k: getattr(ours, k) for k in CODE_OWNED}
        wanted = replace(existing, **owned, timestamp_ms=ours.timestamp_ms)
    same = all(
        getattr(existing, k) == getattr(wanted, k)
        for k in field_names(TriggerConfig)
        if k not in _IGNORED_IN_DIFF
    )
    return None if same else wanted


async def read_current(kafka: KafkaSettings, topic: str, worker_id: str) -> TriggerConfig | None:
    """The latest TriggerConfig for ``worker_id`` (None if absent or deleted)."""
    key = worker_id.encode()
    current: list[TriggerConfig | None] = [None]

    async def keep(record: Record) -> None:
        if record.key != key:
            return
        if record.value is None:
            current[0] = None  # tombstone: the config was deleted
            return
        try:
            event = decode(record.value, record.headers).event
        except DecodeError as exc:
            log.warning("unreadable trigger config for %s: %s", worker_id, exc)
            return
        if isinstance(event, TriggerConfig):
            current[0] = event
        else:
            log.warning("%s on the trigger config topic for %s", event.event_type, worker_id)

    consumer = await open_consumer(kafka, [topic], fetch_max_wait_ms=50)
    try:
        await read_to_end(consumer, keep)
    finally:
        await stop_consumer(consumer)
    return current[0]


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
