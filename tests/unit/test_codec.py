"""Codec: round-trips, envelope headers, typed decode errors, UUIDv7 ids."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from dspy_flywheel.contracts import (
    EVENT_TYPES,
    EVENTS,
    CorruptPayload,
    Event,
    FeedbackRecorded,
    UnknownEventType,
    UnknownFingerprint,
    decode,
    encode,
)
from dspy_flywheel.contracts.codec import MARKER
from dspy_flywheel.contracts.compat import sample_value
from dspy_flywheel.contracts.ids import uuid7
from dspy_flywheel.contracts.registry import SchemaRegistry, default_registry, schema_fingerprint

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def sample_event(event_type: str) -> Event:
    return EVENTS[event_type].from_record(
        sample_value(default_registry().current[event_type].schema)
    )


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_round_trips(event_type: str) -> None:
    event = sample_event(event_type)
    enc = encode(event, traceparent=TRACEPARENT)
    assert enc.value.startswith(MARKER)
    headers = dict(enc.headers)
    assert headers["event_type"] == event_type.encode()
    assert headers["schema_fp"] == enc.value[2:10].hex().encode()
    dec = decode(enc.value, enc.headers)
    assert dec.event_type == event_type
    assert type(dec.event) is EVENTS[event_type]
    assert dec.event == event
    assert dec.event_id == enc.event_id
    assert dec.traceparent == TRACEPARENT


def test_unknown_fingerprint_is_a_typed_error() -> None:
    enc = encode(sample_event("Alert"))
    forged = MARKER + b"\x01" * 8 + enc.value[10:]
    with pytest.raises(UnknownFingerprint, match="0101010101010101"):
        decode(forged)


@pytest.mark.parametrize(
    "value",
    [b"", b"\x00\x01garbage", b'{"json": true}', None],
)
def test_not_single_object_encoding_is_corrupt(value: bytes | None) -> None:
    with pytest.raises(CorruptPayload):
        decode(value)


def test_truncated_body_is_corrupt() -> None:
    enc = encode(sample_event("ExecutionRecorded"))
    with pytest.raises(CorruptPayload):
        decode(enc.value[:-5])
    with pytest.raises(CorruptPayload, match="trailing"):
        decode(enc.value + b"\x00\x00")


def test_encode_rejects_unknown_type_and_bad_values(tmp_path: Path) -> None:
    with pytest.raises(UnknownEventType):
        encode(sample_event("Alert"), registry=SchemaRegistry(tmp_path))  # no schemas there
    wrong = [{"execution_id": 3}, {"score": "high"}, {"timestamp_ms": 2**63}, {"label": b"x"}]
    for change in wrong:
        event = replace(sample_event("FeedbackRecorded"), **change)
        with pytest.raises(ValueError, match="FeedbackRecorded record does not match"):
            encode(event)


def test_a_class_that_differs_from_its_schema_is_refused() -> None:
    @dataclass(frozen=True, slots=True, kw_only=True)
    class FeedbackRecordedPlus(FeedbackRecorded):  # one field the schema does not have
        tenant: str = "t"

    event = FeedbackRecordedPlus(execution_id="e", worker_id="w", score=1.0, timestamp_ms=1)
    with pytest.raises(UnknownEventType, match="tenant"):
        encode(event)


def test_fingerprint_is_crc64_avro_of_the_canonical_form() -> None:
    # Avro's own test vector: the fingerprint of the schema "null" is 7195948357588979594.
    assert schema_fingerprint("null") == (7195948357588979594).to_bytes(8, "little")


def test_uuid7_is_version_7_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(200)]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    ms = [u.int >> 80 for u in ids]
    assert ms == sorted(ms)
