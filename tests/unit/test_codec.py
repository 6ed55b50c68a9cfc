"""Codec: round-trips, envelope headers, typed decode errors, UUIDv7 ids."""

from __future__ import annotations

import uuid

import pytest

from dspy_flywheel.contracts import (
    EVENT_TYPES,
    CorruptPayload,
    UnknownEventType,
    UnknownFingerprint,
    decode,
    encode,
)
from dspy_flywheel.contracts.codec import MARKER
from dspy_flywheel.contracts.compat import sample_value
from dspy_flywheel.contracts.fingerprint import crc64_avro
from dspy_flywheel.contracts.ids import uuid7
from dspy_flywheel.contracts.registry import default_registry

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_round_trips(event_type: str) -> None:
    record = sample_value(default_registry().current[event_type].schema)
    enc = encode(event_type, record, traceparent=TRACEPARENT)
    assert enc.value.startswith(MARKER)
    headers = dict(enc.headers)
    assert headers["event_type"] == event_type.encode()
    assert headers["schema_fp"] == enc.value[2:10].hex().encode()
    dec = decode(enc.value, enc.headers)
    assert dec.event_type == event_type
    assert dec.record == record
    assert dec.event_id == enc.event_id
    assert dec.traceparent == TRACEPARENT


def test_unknown_fingerprint_is_a_typed_error() -> None:
    enc = encode("Alert", sample_value(default_registry().current["Alert"].schema))
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
    record = sample_value(default_registry().current["ExecutionRecorded"].schema)
    enc = encode("ExecutionRecorded", record)
    with pytest.raises(CorruptPayload):
        decode(enc.value[:-5])
    with pytest.raises(CorruptPayload, match="trailing"):
        decode(enc.value + b"\x00\x00")


def test_encode_rejects_unknown_type_and_bad_record() -> None:
    with pytest.raises(UnknownEventType):
        encode("NoSuchEvent", {})
    with pytest.raises(ValueError, match="does not match"):
        encode("FeedbackRecorded", {"execution_id": 3})


def test_crc64_avro_matches_the_spec_empty_value() -> None:
    # The Rabin fingerprint of no bytes is the EMPTY constant itself (Avro spec).
    assert crc64_avro(b"") == 0xC15D213AA4D7A795


def test_uuid7_is_version_7_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(200)]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    ms = [u.int >> 80 for u in ids]
    assert ms == sorted(ms)
