"""The flat-record reader decodes exactly what fastavro decodes, and fails on bad bodies."""

from __future__ import annotations

import io
import random
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer

from dspy_flywheel.contracts import EVENT_TYPES, CorruptPayload, decode, encode
from dspy_flywheel.contracts.codec import HEADER_LEN
from dspy_flywheel.contracts.compat import sample_value
from dspy_flywheel.contracts.flatreader import compile_reader
from dspy_flywheel.contracts.registry import default_registry

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


@pytest.mark.parametrize("event_type", FLAT_TYPES)
def test_same_records_as_fastavro(event_type: str) -> None:
    schema = default_registry().current[event_type].schema
    reader = compile_reader(schema)
    assert reader is not None
    rng = random.Random(event_type)
    for record in [sample_value(schema)] + [random_record(schema, rng) for _ in range(200)]:
        buf = io.BytesIO()
        schemaless_writer(buf, schema, record)
        body = buf.getvalue()
        expected = schemaless_reader(io.BytesIO(body), schema, None)
        assert reader.read(body, 0) == expected == record


@pytest.mark.parametrize("event_type", ["ExecutionRecorded", "FeedbackRecorded"])
def test_every_truncation_is_corrupt(event_type: str) -> None:
    record = sample_value(default_registry().current[event_type].schema)
    value = encode(event_type, record).value
    for cut in range(HEADER_LEN, len(value)):
        with pytest.raises(CorruptPayload):
            decode(value[:cut])


def test_bad_union_branch_and_boolean_are_corrupt() -> None:
    schema = default_registry().current["FeedbackRecorded"].schema
    reader = compile_reader(schema)
    assert reader is not None
    record = sample_value(schema) | {"label": None}
    enc = encode("FeedbackRecorded", record).value
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
