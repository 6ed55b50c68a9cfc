"""Each event class mirrors its ``.avsc``: field names in order, types, defaults."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

import pytest

from dspy_flywheel.contracts import (
    EVENT_TYPES,
    EVENTS,
    ExecutionRecorded,
    FeedbackRecorded,
    InvalidEvent,
)
from dspy_flywheel.contracts.registry import schema_path

_PYTHON: dict[str, Any] = {
    "string": str,
    "long": int,
    "int": int,
    "double": float,
    "float": float,
    "boolean": bool,
    "bytes": bytes,
}


def avsc_fields(event_type: str) -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = json.loads(schema_path(event_type).read_text())["fields"]
    return fields


def python_type(avro: Any) -> Any:
    if isinstance(avro, list):
        assert len(avro) == 2, f"unsupported union {avro}"
        assert avro[0] == "null", f"unsupported union {avro}"
        return _PYTHON[avro[1]] | None
    return _PYTHON[avro]


def test_every_schema_has_a_class_and_every_class_a_schema() -> None:
    on_disk = {p.name.split(".")[-2] for p in schema_path("X").parent.glob("*.avsc")}
    assert on_disk == set(EVENT_TYPES)
    assert all(EVENTS[name].event_type == name == EVENTS[name].__name__ for name in EVENTS)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_class_mirrors_its_schema(event_type: str) -> None:
    cls = EVENTS[event_type]
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    schema = avsc_fields(event_type)
    assert [f.name for f in fields] == [f["name"] for f in schema]
    for field, avro in zip(fields, schema, strict=True):
        assert hints[field.name] == python_type(avro["type"]), field.name
        if "default" in avro:
            assert field.default == avro["default"], field.name
        else:
            assert field.default is dataclasses.MISSING, field.name
        assert field.default_factory is dataclasses.MISSING, field.name


def test_events_are_frozen_keyword_only_and_round_trip_records() -> None:
    event = FeedbackRecorded(execution_id="e1", worker_id="w1", score=0.5, timestamp_ms=7)
    assert event.to_record() == {
        "execution_id": "e1",
        "worker_id": "w1",
        "label": None,
        "score": 0.5,
        "source": "user",
        "timestamp_ms": 7,
    }
    assert FeedbackRecorded.from_record(event.to_record()) == event
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.score = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        FeedbackRecorded("e1", "w1", timestamp_ms=7)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "record",
    [
        {"execution_id": "e1", "timestamp_ms": 7},  # worker_id missing
        {"execution_id": "e1", "worker_id": "w1", "timestamp_ms": 7, "tenant": "t"},
    ],
)
def test_from_record_names_what_is_wrong(record: dict[str, Any]) -> None:
    with pytest.raises(InvalidEvent, match="FeedbackRecorded record"):
        FeedbackRecorded.from_record(record)


def test_defaults_fill_optional_fields() -> None:
    event = ExecutionRecorded(
        worker_id="w",
        worker_type="t",
        execution_id="x",
        inputs_json="{}",
        success=False,
        latency_ms=1.0,
        timestamp_ms=1,
    )
    assert (event.outputs_json, event.error, event.lm_calls, event.metric_score) == (
        None,
        None,
        0,
        None,
    )
