"""Validation at the edge: each value that once stopped a service is a clean InvalidInput."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dspy_flywheel.contracts import ExecutionRecorded, InvalidRecord, decode, encode
from dspy_flywheel.contracts.compat import sample_value
from dspy_flywheel.contracts.registry import default_registry
from dspy_flywheel.contracts.validate import (
    MAX_JSON_DEPTH,
    MAX_TIMESTAMP_MS,
    InvalidInput,
    check_event_id,
    check_id,
    check_json_text,
    check_json_value,
    check_record,
    check_text,
    check_timestamp_ms,
    parse_json,
    text_depth,
    valid_traceparent,
)


def deep_text(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


def deep_value(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": [value]}
    return value


def reason(call: Any, *args: Any) -> str:
    with pytest.raises(InvalidInput) as info:
        call(*args)
    return info.value.reason


def test_text_limits() -> None:
    assert check_text("fine ünïcode", "f") == "fine ünïcode"
    assert reason(check_text, "a\x00b", "f") == "nul_character"
    assert reason(check_text, "x" * 11, "f", 10) == "too_long"
    assert reason(check_text, "\ud800", "f") == "invalid_text"  # a lone surrogate (from JSON)
    assert reason(check_text, 5, "f") == "wrong_type"


@pytest.mark.parametrize("bad", ["", " w", "w ", "w\x00", "w\n", "x" * 257, "\u200bw"])
def test_malformed_ids(bad: str) -> None:
    with pytest.raises(InvalidInput):
        check_id(bad, "worker_id")


def test_ids_that_are_fine() -> None:
    for good in ("router", "router v2", "équipe/\u03b1:1", "x" * 256):
        assert check_id(good, "worker_id") == good


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 50_000, 100_000])
def test_deep_json_text_is_refused_without_recursion(depth: int) -> None:
    text = deep_text(depth, "{", "}") if depth < 0 else deep_text(depth)
    assert reason(check_json_text, text, "inputs_json") == "too_deep"
    assert reason(parse_json, text, "inputs_json") == "too_deep"


def test_json_depth_skips_brackets_in_strings() -> None:
    inside = json.dumps({"a": "[" * 500 + '\\"' + "{" * 500})
    assert text_depth(inside) == 1
    assert check_json_text(inside, "f") == inside
    assert text_depth(deep_text(MAX_JSON_DEPTH)) == MAX_JSON_DEPTH
    assert parse_json(deep_text(MAX_JSON_DEPTH), "f") is not None


def test_escaped_nul_and_bad_json() -> None:
    assert reason(check_json_text, '{"a": "x\\u0000"}', "f") == "nul_character"
    assert reason(parse_json, "{not json", "f") == "invalid_json"
    assert reason(check_json_text, "[]" * 10, "f", 5) == "too_long"


def test_parsed_json_values() -> None:
    assert check_json_value({"a": [1, "b", None]}, "params") == {"a": [1, "b", None]}
    assert reason(check_json_value, deep_value(100_000), "params") == "too_deep"
    assert reason(check_json_value, {"k\x00": 1}, "params") == "nul_character"
    assert reason(check_json_value, [float("nan")], "params") == "out_of_range"


@pytest.mark.parametrize("value", [2**62, -1, MAX_TIMESTAMP_MS + 1, True, 1.5])
def test_timestamps_out_of_range(value: object) -> None:
    with pytest.raises(InvalidInput):
        check_timestamp_ms(value)


def test_headers() -> None:
    assert check_event_id(b"0190a3c4-1111-7aaa-8bbb-123456789abc")
    for bad in (b"\xff\xfe\xfd", b"", b"id\x00", "é".encode(), b"a b\n"):
        assert reason(check_event_id, bad) == "bad_header"
    good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert valid_traceparent(good.encode()) == good
    assert valid_traceparent(b"\xff" + good.encode()) is None
    assert valid_traceparent(b"00-zz") is None


def test_record_fields_by_kind() -> None:
    check_record({"worker_id": "w", "inputs_json": "{}", "label": "x" * 100_000})
    assert reason(check_record, {"worker_id": "w\x00"}) == "nul_character"
    assert reason(check_record, {"worker_type": "t" * 2000}) == "too_long"
    assert reason(check_record, {"timestamp_ms": 2**62}) == "bad_timestamp"
    assert reason(check_record, {"optimizer_params_json": deep_text(50_000)}) == "too_deep"


def _execution(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = sample_value(default_registry().current["ExecutionRecorded"].schema)
    record.update({"worker_id": "w", "execution_id": "e1", "timestamp_ms": 1_700_000_000_000})
    record.update(changes)
    return record


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"worker_id": "w\x00"}, "nul_character"),
        ({"timestamp_ms": 2**62}, "bad_timestamp"),
        ({"inputs_json": deep_text(50_000)}, "too_deep"),
        ({"outputs_json": deep_text(50_000, "{", "}")}, "too_deep"),
        ({"execution_id": ""}, "missing_id"),
    ],
)
def test_decode_refuses_invalid_records(changes: dict[str, Any], expected: str) -> None:
    enc = encode(ExecutionRecorded.from_record(_execution(**changes)))
    with pytest.raises(InvalidRecord) as info:
        decode(enc.value, enc.headers)
    assert info.value.reason == expected
    assert not info.value.retriable


def test_decode_refuses_a_non_utf8_event_id_and_drops_a_bad_traceparent() -> None:
    enc = encode(ExecutionRecorded.from_record(_execution()))
    with pytest.raises(InvalidRecord, match="not UTF-8"):
        decode(enc.value, [("event_id", b"\xff\xfe\xfd")])
    decoded = decode(enc.value, [*enc.headers, ("traceparent", b"\x00garbage")])
    assert decoded.traceparent is None
    assert decoded.event_id == enc.event_id
