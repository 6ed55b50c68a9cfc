"""The outbox relay sets aside rows no retry can send and retries the batch for anything else."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, RecordTooLargeError

from dspy_flywheel.bus import OutboxRelay
from dspy_flywheel.bus.outbox import OutboxEvent, Refused
from dspy_flywheel.contracts.events import FeedbackRecorded


def row(event_id: str, label: Any = "a") -> OutboxEvent:
    event = FeedbackRecorded(worker_id="w1", execution_id=event_id, label=label, timestamp_ms=1)
    return OutboxEvent(event_id, "feedback", "w1", event, None)


class Producer:
    """Refuses ``at_send`` ids when sent, fails ``at_ack`` ids with the given error when acked."""

    def __init__(self, at_send: set[str], at_ack: dict[str, Exception]) -> None:
        self.at_send, self.at_ack = at_send, at_ack
        self.sent: list[str] = []

    async def send(self, topic: str, value: bytes, *, key: bytes, headers: Any) -> Any:
        event_id = dict(headers)["event_id"].decode()
        if event_id in self.at_send:
            raise MessageSizeTooLargeError("too large")
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if event_id in self.at_ack:
            future.set_exception(self.at_ack[event_id])
        else:
            self.sent.append(event_id)
            future.set_result(None)
        return future


def relay_of(producer: Producer) -> tuple[OutboxRelay, list[str]]:
    """A relay over ``producer`` and the event ids it reports sent."""
    acked: list[str] = []
    relay = OutboxRelay(None, producer, on_sent=lambda e: acked.append(e.event_id))  # type: ignore[arg-type]
    return relay, acked


async def send(producer: Producer, rows: list[OutboxEvent]) -> tuple[Refused, list[str]]:
    relay, acked = relay_of(producer)
    return await relay._send(rows), acked


async def test_rows_the_producer_or_broker_refuse_are_returned_and_the_rest_sent() -> None:
    producer = Producer({"big"}, {"broker-big": RecordTooLargeError("too large")})
    refused, acked = await send(producer, [row("a"), row("big"), row("broker-big"), row("b")])
    assert set(refused) == {"big", "broker-big"}
    assert refused["big"].startswith("MessageSizeTooLargeError")
    assert refused["broker-big"].startswith("RecordTooLargeError")
    assert acked == ["a", "b"] == producer.sent


async def test_a_row_its_schema_refuses_is_returned_not_sent() -> None:
    producer = Producer(set(), {})
    refused, acked = await send(producer, [row("bad", label={"not": "a string"}), row("b")])
    assert list(refused) == ["bad"]
    assert "does not match its schema" in refused["bad"]
    assert acked == ["b"]


async def test_a_failure_retrying_can_fix_fails_the_batch_and_marks_nothing() -> None:
    producer = Producer({"big"}, {"b": KafkaConnectionError("broker away")})
    relay, acked = relay_of(producer)
    with pytest.raises(KafkaConnectionError):
        await relay._send([row("a"), row("big"), row("b")])
    assert acked == []  # the whole batch is retried, same event ids
