"""The flat-record writer and reader agree with fastavro byte for byte, field for field.

fastavro reads the ``.avsc`` files here on its own (not through the registry), so a writer or
reader whose field order or types differ from the schema fails these tests.
"""

from __future__ import annotations

import io
import random
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import load_schema

from dspy_flywheel.contracts import EVENT_TYPES, EVENTS, CorruptPayload, decode, encode
from dspy_flywheel.contracts.codec import HEADER_LEN, MARKER
from dspy_flywheel.contracts.compat import sample_value
from dspy_flywheel.contracts.flat import compile_reader, compile_writer
from dspy_flywheel.contracts.registry import default_registry, schema_path
from dspy_flywheel.contracts.validate import ID_FIELDS, MAX_TIMESTAMP_MS, TIMESTAMP_FIELDS

FLAT_TYPES = [t for t in EVENT_TYPES if compile_reader(default_registry().current[t].schema)]


def test_the_hot_event_types_are_flat() -> None:
    assert {"ExecutionRecorded", "FeedbackRecorded"} <= set(FLAT_TYPES)


def random_record(schema: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in schema["fields"]:
        kind = field["type"]
        if isinstance(kind, list):
            if rng.random() < 0.3:
                out[field["name"]] = None
                continue
            kind = kind[1]
        if kind == "string":
            chars = (rng.choice('aé€𝄞 \n"{') for _ in range(rng.randrange(300)))
            out[field["name"]] = "".join(chars)
        elif kind == "int":
            out[field["name"]] = rng.randrange(-(2**31), 2**31)
        elif kind == "long":
            out[field["name"]] = rng.choice([0, -1, 63, -64, 64, 2**63 - 1, -(2**63)])
        elif kind in ("double", "float"):
            out[field["name"]] = rng.choice([0.0, -2.5, 1e300 if kind == "double" else 3.5])
        elif kind == "boolean":
            out[field["name"]] = rng.random() < 0.5
        else:
            out[field["name"]] = rng.randbytes(rng.randrange(40))
    return out


def fastavro_body(schema: Any, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, schema, record)
    return buf.getvalue()


@pytest.mark.parametrize("event_type", FLAT_TYPES)
def test_same_records_as_fastavro(event_type: str) -> None:
    schema = default_registry().current[event_type].schema
    reader = compile_reader(schema)
    assert reader is not None
    rng = random.Random(event_type)
    for record in [sample_value(schema)] + [random_record(schema, rng) for _ in range(200)]:
        body = fastavro_body(schema, record)
        expected = schemaless_reader(io.BytesIO(body), schema, None)
        assert reader.read(body, 0) == expected == record


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_encode_writes_what_fastavro_reads_from_the_avsc(event_type: str) -> None:
    avsc = load_schema(str(schema_path(event_type)))
    rng = random.Random(f"write {event_type}")
    for record in [sample_value(avsc)] + [random_record(avsc, rng) for _ in range(200)]:
        encoded = encode(EVENTS[event_type].from_record(record))
        assert (
            encoded.value[:HEADER_LEN]
            == MARKER + default_registry().current[event_type].fingerprint
        )
        body = encoded.value[HEADER_LEN:]
        assert body == fastavro_body(avsc, record)
        assert schemaless_reader(io.BytesIO(body), avsc, None) == record


def within_limits(record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """``record`` with ids and timestamps that decode's edge validation accepts."""
    ids = {k: f"id-{rng.getrandbits(64):x}é" for k in record if k in ID_FIELDS}
    times = {k: rng.randrange(MAX_TIMESTAMP_MS + 1) for k in record if k in TIMESTAMP_FIELDS}
    return record | ids | times


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_decode_reads_what_fastavro_writes_from_the_avsc(event_type: str) -> None:
    avsc = load_schema(str(schema_path(event_type)))
    prefix = MARKER + default_registry().current[event_type].fingerprint
    rng = random.Random(f"read {event_type}")
    for record in [within_limits(random_record(avsc, rng), rng) for _ in range(200)]:
        event = decode(prefix + fastavro_body(avsc, record)).event
        assert type(event) is EVENTS[event_type]
        assert event.to_record() == record


def test_the_writer_refuses_values_of_the_wrong_type_or_range() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "n", "type": "int"},
            {"name": "flag", "type": "boolean"},
            {"name": "raw", "type": ["null", "bytes"]},
        ],
    }
    writer = compile_writer(schema)
    assert writer is not None

    class Values:
        def __init__(self, n: object, flag: object, raw: object) -> None:
            self.n, self.flag, self.raw = n, flag, raw

    assert writer.write(Values(-(2**31), True, None)) == fastavro_body(
        schema, {"n": -(2**31), "flag": True, "raw": None}
    )
    for bad in [Values(2**31, True, None), Values("1", True, None), Values(1.5, True, None)]:
        with pytest.raises((ValueError, TypeError)):
            writer.write(bad)
    with pytest.raises(TypeError, match="bool"):
        writer.write(Values(1, 1, None))
    with pytest.raises(TypeError, match="bytes"):
        writer.write(Values(1, False, "text"))


@pytest.mark.parametrize("event_type", ["ExecutionRecorded", "FeedbackRecorded"])
def test_every_truncation_is_corrupt(event_type: str) -> None:
    record = sample_value(default_registry().current[event_type].schema)
    value = encode(EVENTS[event_type].from_record(record)).value
    for cut in range(HEADER_LEN, len(value)):
        with pytest.raises(CorruptPayload):
            decode(value[:cut])


def test_bad_union_branch_and_boolean_are_corrupt() -> None:
    schema = default_registry().current["FeedbackRecorded"].schema
    reader = compile_reader(schema)
    assert reader is not None
    record = sample_value(schema) | {"label": None}
    enc = encode(EVENTS["FeedbackRecorded"].from_record(record)).value
    body = bytearray(enc)
    label_at = HEADER_LEN + 2 + len(record["execution_id"].encode()) + len(record["worker_id"])
    assert body[label_at] == 0  # the null branch of label
    body[label_at] = 4  # branch 2 does not exist
    with pytest.raises(CorruptPayload, match="union branch"):
        decode(bytes(body))


def test_schemas_with_other_types_are_not_compiled() -> None:
    nested = {
        "type": "record",
        "name": "X",
        "fields": [{"name": "tags", "type": {"type": "array", "items": "string"}}],
    }
    union = {"type": "record", "name": "Y", "fields": [{"name": "v", "type": ["int", "string"]}]}
    assert compile_reader(nested) is None
    assert compile_reader(union) is None
    assert compile_writer(nested) is None
    assert compile_writer(union) is None
