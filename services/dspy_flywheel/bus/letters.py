"""Reading dead letters back, and replaying a fixed record (``flywheel dlq list|show|replay``).

A dead letter is found by its offset in ``<topic>.dlq``. Replaying it publishes the fixed record
to the original topic with the original key, a **new** ``event_id`` and the headers
``replay_of`` (the original event id, or its ``topic:partition:offset``) and ``replay_from``
(the dead letter's ``dlq-topic:partition:offset``). The original id was marked processed when
the record was set aside, so a replay under it would be skipped as already applied; under a new
id it is processed like a fresh event, and the collector joins it by its ``execution_id``
(pending feedback for that execution resolves).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from dspy_flywheel.bus.consumer import open_consumer, read_to_end, stop_consumer
from dspy_flywheel.bus.dlq import SEALED_HEADER, open_sealed
from dspy_flywheel.bus.guard import Record
from dspy_flywheel.contracts.codec import DecodeError, decode, encode
from dspy_flywheel.contracts.events import event_from_record
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.contracts.validate import check_record, valid_traceparent
from dspy_flywheel.security.crypto import Cipher
from dspy_flywheel.settings import KafkaSettings


@dataclass(frozen=True)
class Letter:
    offset: int
    partition: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]

    @property
    def source(self) -> str:
        return self.header("dlq_source") or "?"

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value.decode(errors="replace") if value is not None else None

    def summary(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "source": self.source,
            "reason": self.header("dlq_reason"),
            "consumer": self.header("dlq_consumer"),
            "event_id": self.header("event_id"),
            "error": self.header("dlq_error"),
            "truncated_from": self.header("dlq_truncated"),
            "sealed": self.sealed,
        }

    @property
    def sealed(self) -> bool:
        return SEALED_HEADER in self.headers

    def original(self, cipher: Cipher | None) -> bytes | None:
        """The value as it was consumed: opened with ``cipher`` when it was sealed."""
        if not self.sealed:
            return self.value
        if cipher is None:
            raise LookupError("the dead letter is sealed: FLYWHEEL_ENCRYPTION_KEYS opens it")
        return open_sealed(cipher, self.value, list(self.headers.items()))

    def details(self, cipher: Cipher | None = None) -> dict[str, Any]:
        """The summary, every header, and the record when the value still decodes (a sealed
        value is opened with ``cipher``)."""
        out = {**self.summary(), "headers": {k: self.header(k) for k in self.headers}}
        out["key"] = self.key.decode(errors="replace") if self.key is not None else None
        try:
            value = self.original(cipher)
            decoded = decode(value, list(self.headers.items()), check=False)
            out["event_type"], out["record"] = decoded.event_type, decoded.event.to_record()
        except (DecodeError, LookupError, ValueError) as exc:  # ValueError: a seal that fails
            out["record"], out["undecodable"] = None, str(exc)
        return out


async def read_letters(kafka: KafkaSettings, topic: str) -> list[Letter]:
    """Every dead letter of ``topic`` (or of ``topic`` itself when it is a ``.dlq``)."""
    consumer = await open_consumer(kafka, [Topics.dlq(topic)], fetch_max_wait_ms=50)
    letters: list[Letter] = []

    async def keep(record: Record) -> None:
        headers = {k: v for k, v in record.headers if v is not None}
        letters.append(Letter(record.offset, record.partition, record.key, record.value, headers))

    try:
        await read_to_end(consumer, keep)
    finally:
        await stop_consumer(consumer)
    return sorted(letters, key=lambda letter: (letter.partition, letter.offset))


async def sent_sources(kafka: KafkaSettings, topic: str) -> set[str]:
    """The ``topic:partition:offset`` of every record of ``topic`` already dead-lettered."""
    return {letter.source for letter in await read_letters(kafka, topic)}


def find(letters: list[Letter], offset: int, partition: int = 0) -> Letter:
    for letter in letters:
        if letter.offset == offset and letter.partition == partition:
            return letter
    raise LookupError(f"no dead letter at partition {partition} offset {offset}")


async def replay(
    producer: AIOKafkaProducer, letter: Letter, record: Mapping[str, Any], *, event_type: str
) -> str:
    """Publish the fixed ``record`` where the letter came from; returns the new event id.

    The record is checked as any consumer would check it (``contracts.validate``) before it
    goes out: a replay that would be refused again is not sent."""
    check_record(record)
    topic = letter.source.rsplit(":", 2)[0]
    if topic == "?":
        raise LookupError("the dead letter names no source topic (dlq_source header)")
    original = letter.header("event_id") or letter.source
    trace = valid_traceparent(letter.headers.get("traceparent"))
    encoded = encode(event_from_record(event_type, record), traceparent=trace)
    headers = [
        *encoded.headers,
        ("replay_of", original.encode()),
        ("replay_from", f"{Topics.dlq(topic)}:{letter.partition}:{letter.offset}".encode()),
    ]
    await producer.send_and_wait(topic, encoded.value, key=letter.key, headers=headers)
    return encoded.event_id
