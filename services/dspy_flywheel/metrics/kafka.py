"""Consumer-side Kafka metrics shared by every service: messages consumed, lag, DLQ records.

A consumer loop calls ``note_consumed`` after each batch it has processed (with the broker's
high watermark per partition, which aiokafka and faust keep locally: no request is made), and
the DLQ publisher calls ``note_dead_letters``. Lag is reported per topic partition as
``high watermark - next offset to process``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from dspy_flywheel.metrics.catalog import Meter

SYSTEM = "kafka"
TOPIC = "messaging.destination.name"
PARTITION = "messaging.destination.partition.id"
GROUP = "messaging.consumer.group.name"

# (group, topic, partition) -> messages behind the high watermark
_lag: dict[tuple[str, str, int], int] = {}
_lock = threading.Lock()


def lag_gauge_callback(_: CallbackOptions) -> Iterable[Observation]:
    with _lock:
        items = list(_lag.items())
    for (group, topic, partition), lag in items:
        yield Observation(
            lag, {"messaging.system": SYSTEM, GROUP: group, TOPIC: topic, PARTITION: str(partition)}
        )


_meter = Meter("bus")
consumed = _meter.counter(
    "messaging.client.consumed.messages",
    "{message}",
    "Kafka records a consumer processed (after its work was durable)",
    ("messaging.system", GROUP, TOPIC),
)
lag_gauge = _meter.observable(
    "gauge",
    "messaging.kafka.consumer.lag",
    "{message}",
    "records in a partition not processed yet: high watermark minus next offset",
    lag_gauge_callback,
    ("messaging.system", GROUP, TOPIC, PARTITION),
)
dead_letters = _meter.counter(
    "flywheel.dlq.records",
    "{record}",
    "records sent to a dead-letter topic, by the reason they were refused",
    (TOPIC, "error.type"),
)

# (topic, partition) -> (next offset to process, high watermark or None when unknown)
Positions = Mapping[tuple[str, int], tuple[int, int | None]]


def note_consumed(group: str, counts: Mapping[str, int], positions: Positions) -> None:
    """After a processed batch: ``counts`` records per topic, and where each partition stands."""
    for topic, n in counts.items():
        if n:
            consumed.add(n, {"messaging.system": SYSTEM, GROUP: group, TOPIC: topic})
    with _lock:
        for (topic, partition), (next_offset, highwater) in positions.items():
            if highwater is not None:
                _lag[(group, topic, partition)] = max(0, highwater - next_offset)


def note_dead_letters(source_topic: str, reasons: Iterable[str]) -> None:
    for reason in reasons:
        dead_letters.add(1, {TOPIC: source_topic, "error.type": reason})


HighWater = Callable[[str, int], int | None]


def note_records(group: str, records: Sequence[tuple[str, int, int]], highwater: HighWater) -> None:
    """``note_consumed`` for processed records given as (topic, partition, offset)."""
    counts: Counter[str] = Counter()
    last: dict[tuple[str, int], int] = {}
    for topic, partition, offset in records:
        counts[topic] += 1
        last[topic, partition] = max(last.get((topic, partition), offset), offset)
    note_consumed(group, counts, {tp: (end + 1, highwater(*tp)) for tp, end in last.items()})


def note_aiokafka_batch(consumer: Any, batch: Mapping[Any, Sequence[Any]]) -> None:
    """``note_consumed`` for a handled ``AIOKafkaConsumer.getmany`` batch (the group is the
    consumer's, "" for one reading every partition)."""
    counts: dict[str, int] = {}
    positions: dict[tuple[str, int], tuple[int, int | None]] = {}
    for tp, records in batch.items():
        if not records:
            continue
        counts[tp.topic] = counts.get(tp.topic, 0) + len(records)
        positions[(tp.topic, tp.partition)] = (records[-1].offset + 1, consumer.highwater(tp))
    if counts:
        # aiokafka keeps the group id privately; it is only a label here
        note_consumed(getattr(consumer, "_group_id", None) or "", counts, positions)
