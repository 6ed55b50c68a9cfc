"""Consumer lag on the real broker: what a partition holds beyond what the consumer handled,
per topic partition, as the ``messaging.kafka.consumer.lag`` gauge reports it (the e2e scrape
sees it at 0 once the services caught up; here the consumer is kept behind)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from opentelemetry.metrics import CallbackOptions

from dspy_flywheel.bus import batches, open_consumer, stop_consumer
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.metrics import kafka as kafka_metrics
from dspy_flywheel.settings import KafkaSettings

SENT = {0: 30, 1: 5}


def _lag(topic: str) -> dict[int, int]:
    """What the gauge's callback reports for ``topic`` (a metric reader calls the same)."""
    found = {}
    for seen in kafka_metrics.lag_gauge_callback(CallbackOptions()):
        attrs = seen.attributes or {}
        if attrs.get(kafka_metrics.TOPIC) == topic:
            found[int(str(attrs[kafka_metrics.PARTITION]))] = int(seen.value)
    return found


async def test_lag_is_the_records_a_partition_holds_beyond_the_consumer(
    kafka_settings: KafkaSettings, topics: Topics, producer: AIOKafkaProducer
) -> None:
    topic = topics.feedback  # two partitions
    for partition, n in SENT.items():
        for i in range(n):
            await producer.send_and_wait(topic, b"r%d" % i, partition=partition)
    consumer = await open_consumer(kafka_settings, [topic], fetch_max_wait_ms=200)
    handled = dict.fromkeys(SENT, 0)
    behind: list[dict[int, int]] = []
    try:
        async for batch in batches(consumer, timeout_ms=500, max_records=7):
            # the batches before this one are noted: the gauge shows what is left of them
            shown = _lag(topic)
            for partition, left in shown.items():
                assert left == SENT[partition] - handled[partition], (shown, handled)
            behind.append(shown)
            if not batch and handled == SENT:
                break
            for tp, records in batch.items():
                handled[tp.partition] += len(records)
    finally:
        await stop_consumer(consumer)
    assert any(lag.get(0, 0) >= 7 for lag in behind), behind  # seen well behind on the way
    assert behind[-1] == {0: 0, 1: 0}  # and caught up at the end
