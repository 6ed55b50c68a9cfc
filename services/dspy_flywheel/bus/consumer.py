"""Opening consumers and the consumer loop every service shares.

Two ways to read, one factory (``open_consumer``):

* **in a consumer group** (``group_id``): partitions are shared among the group's instances;
  offsets are committed by the caller, after its work is durable (auto-commit is always off);
* **every partition** (no group): each instance reads the whole topic, from stored
  ``positions`` where given, else from the beginning (or the end with ``start_from="latest"``).
  The topics must exist (``ensure_topics``): a subscription to a missing topic would let a
  broker with ``auto.create.topics.enable`` create it with the wrong settings.

``batches`` is the loop: it fetches until ``stop`` is set, racing each fetch against ``stop`` so
a stopping service does not wait out a fetch; when the caller comes back for the next batch it
has handled the last one, which is then counted (consumed messages, lag per partition).
``consume_group`` is the whole loop of a group consumer whose records are handled one by one
under a ``RecordGuard``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from dspy_flywheel.bus.guard import Record, RecordGuard
from dspy_flywheel.bus.preflight import start_client
from dspy_flywheel.metrics.kafka import note_aiokafka_batch
from dspy_flywheel.settings import KafkaSettings

log = logging.getLogger(__name__)

Batch: TypeAlias = dict[TopicPartition, list[Record]]
Positions: TypeAlias = Mapping[tuple[str, int], int]  # (topic, partition) -> next offset
P = TypeVar("P")
STOP_TIMEOUT_S = 5.0


async def open_consumer(
    kafka: KafkaSettings,
    topics: Sequence[str],
    *,
    group_id: str | None = None,
    positions: Positions | None = None,
    start_from: Literal["earliest", "latest"] = "earliest",
    listener: ConsumerRebalanceListener | None = None,
    **options: Any,
) -> AIOKafkaConsumer:
    """A started consumer of ``topics``: in ``group_id``, or (None) on every partition."""
    consumer = AIOKafkaConsumer(
        **kafka.client_kwargs(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset=start_from,
        **options,
    )
    consumer.subscribe(list(topics), listener=listener)
    await start_client(consumer, kafka)
    if group_id is not None:
        return consumer
    try:
        await _position(consumer, positions or {}, start_from)
    except BaseException:
        await stop_consumer(consumer)
        raise
    return consumer


async def _position(consumer: AIOKafkaConsumer, positions: Positions, start_from: str) -> None:
    tps = assigned(consumer)
    if not tps:
        raise LookupError(f"topics {sorted(consumer.subscription())} have no partitions")
    fresh = []
    for tp in tps:
        stored = positions.get((tp.topic, tp.partition))
        if stored is None:
            fresh.append(tp)
        else:
            consumer.seek(tp, stored)
    if fresh and start_from == "earliest":
        await consumer.seek_to_beginning(*fresh)
    elif fresh:
        await consumer.seek_to_end(*fresh)


def in_order(batch: Batch, topics: Sequence[str]) -> Iterator[tuple[TopicPartition, Record]]:
    """A batch's records, topic by topic in the order of ``topics`` (others last), partition
    by partition, each partition's in offset order (what must be applied first comes first)."""
    rank = {t: i for i, t in enumerate(topics)}
    for tp in sorted(batch, key=lambda tp: (rank.get(tp.topic, len(rank)), tp.partition)):
        for record in batch[tp]:
            yield tp, record


def assigned(consumer: AIOKafkaConsumer) -> list[TopicPartition]:
    return sorted(consumer.assignment())


async def stop_consumer(consumer: AIOKafkaConsumer, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop ``consumer``, giving up after ``timeout_s`` (a lost broker: nothing left to do)."""
    await asyncio.sleep(0)  # a no-group consumer's internal task must start, else stop() re-raises
    try:
        await asyncio.wait_for(consumer.stop(), timeout_s)
    except Exception as exc:  # closing after a lost connection: nothing to save
        log.debug("consumer stop: %r", exc)


async def read_range(
    consumer: AIOKafkaConsumer,
    ends: Mapping[TopicPartition, int],
    handle: Callable[[Record], Awaitable[None]],
    *,
    until_idle: bool = False,
) -> dict[TopicPartition, int]:
    """Feed every fetched record to ``handle`` until each partition's position reaches its end
    in ``ends`` (a fetch may pass it; ``handle`` sees those records too), or, ``until_idle``,
    a fetch finds nothing (an end that no longer exists). Returns the next offset per
    partition."""
    todo = dict(ends)
    while todo:
        for tp in list(todo):
            if await consumer.position(tp) >= todo[tp]:
                del todo[tp]
        if not todo:
            break
        batch = await consumer.getmany(*todo, timeout_ms=500)
        if not batch and until_idle:
            break
        for records in batch.values():
            for record in records:
                await handle(record)
    return {tp: await consumer.position(tp) for tp in ends}


async def read_to_end(
    consumer: AIOKafkaConsumer, handle: Callable[[Record], Awaitable[None]]
) -> dict[TopicPartition, int]:
    """``read_range`` up to the end offsets of every assigned partition as of now."""
    return await read_range(consumer, await consumer.end_offsets(assigned(consumer)), handle)


async def batches(
    consumer: AIOKafkaConsumer,
    stop: asyncio.Event | None = None,
    *,
    timeout_ms: int,
    max_records: int | None = None,
) -> AsyncIterator[Batch]:
    """Every fetch (empty ones too) until ``stop`` is set; forever when it is None."""
    stopping = asyncio.ensure_future(stop.wait()) if stop is not None else None
    try:
        while stop is None or not stop.is_set():
            fetching = asyncio.ensure_future(
                consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
            )
            if stopping is not None:
                await asyncio.wait({fetching, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not fetching.done():
                    fetching.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await fetching
                    return
            batch = await fetching
            yield batch
            note_aiokafka_batch(consumer, batch)  # the caller is back: it handled the batch
    finally:
        if stopping is not None:
            stopping.cancel()


async def consume_group(
    kafka: KafkaSettings,
    topic: str,
    group_id: str,
    guard: RecordGuard[P],
    handle: Callable[[P], Awaitable[object]],
    stop: asyncio.Event,
    *,
    ready: asyncio.Event | None = None,
) -> None:
    """Handle each record of ``topic`` under ``guard`` in consumer group ``group_id`` until
    ``stop``; offsets are committed after each batch, once every record of it is handled."""
    consumer = await open_consumer(kafka, [topic], group_id=group_id, fetch_max_wait_ms=200)
    if ready is not None:
        ready.set()
    try:
        async for batch in batches(consumer, stop, timeout_ms=500):
            for records in batch.values():
                for record in records:
                    await guard(record, handle)
            if batch:
                try:
                    await consumer.commit()
                except KafkaError as exc:  # a rebalance: the next owner gets them again
                    log.warning("offset commit failed (%r); those records will be redelivered", exc)
    finally:
        await stop_consumer(consumer)
