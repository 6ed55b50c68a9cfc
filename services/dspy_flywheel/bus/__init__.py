"""Kafka plumbing every service shares (services keep only their handlers).

``admin``: topic provisioning. ``publish``: producers and sending one encoded event.
``consumer``: opening consumers (group or every partition), the fetch loop, reading to the end.
``guard``: one guard per consumed record (decode, handle; bad records to the DLQ, retries).
``dlq``: dead letters with one header set. ``outbox``: the transactional-outbox relay.
``supervise``: a service's loops side by side, one ending stops them all.
"""

from dspy_flywheel.bus.admin import ensure_topics
from dspy_flywheel.bus.consumer import (
    Batch,
    batches,
    consume_group,
    in_order,
    open_consumer,
    read_to_end,
    stop_consumer,
)
from dspy_flywheel.bus.dlq import DeadLetter, DeadLetters, open_sealed
from dspy_flywheel.bus.errors import is_retriable
from dspy_flywheel.bus.guard import (
    UNTIL_IT_WORKS,
    Record,
    RecordGuard,
    Retry,
    decode_record,
    owner_guard,
    retrying,
)
from dspy_flywheel.bus.outbox import OutboxEvent, OutboxRelay
from dspy_flywheel.bus.publish import publish, start_producer, stop_producer
from dspy_flywheel.bus.supervise import every, supervise

__all__ = [
    "UNTIL_IT_WORKS", "Batch", "DeadLetter", "DeadLetters", "OutboxEvent", "OutboxRelay", "Record",
    "RecordGuard", "Retry", "batches", "consume_group", "decode_record", "ensure_topics", "every",
    "in_order", "is_retriable", "open_consumer", "open_sealed", "owner_guard", "publish",
    "read_to_end", "retrying", "start_producer", "stop_consumer", "stop_producer", "supervise",
]  # fmt: skip
