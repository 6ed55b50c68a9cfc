"""The fast ExecutionRecorded encoder writes exactly what the generic codec writes."""

from __future__ import annotations

import pytest

from dspy_flywheel.contracts.codec import decode, encode
from dspy_flywheel.contracts.validate import MAX_TIMESTAMP_MS
from dspy_flywheel.sdk import fastcodec
from dspy_flywheel.sdk.events import ExecutionPayload, execution_record

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def payload(**changes: object) -> ExecutionPayload:
    base = ExecutionPayload(
        worker_id="ticket-router",
        worker_type="router",
        program_version=None,
        execution_id="01900000-0000-7000-8000-000000000001",
        inputs={"text": "Ich wurde zweimal belastet 💳", "meta": {"n": [1, 2.5, None]}},
        outputs={"label": "billing", "confidence": 0.93},
        error=None,
        latency_ms=12.345,
        lm_calls=2,
        prompt_tokens=1234,
        completion_tokens=56,
        timestamp_ms=1_790_000_000_000,
    )
    return base._replace(**changes)


@pytest.mark.parametrize(
    "p",
    [
        payload(),
        payload(program_version=17, lm_calls=0, prompt_tokens=0, completion_tokens=0),
        payload(outputs=None, error="ValueError: bad input", latency_ms=0.0),
        # the largest varints: 2**62 in a long field; the last valid timestamp (year 9999)
        payload(
            prompt_tokens=2**62,
            completion_tokens=2**40,
            timestamp_ms=MAX_TIMESTAMP_MS,
            inputs={"x": "a" * 300},
        ),
        payload(inputs={"odd": {1, 2}}, outputs={"obj": object.__name__}),
    ],
)
def test_same_bytes_and_headers_as_the_codec(p: ExecutionPayload) -> None:
    assert fastcodec.ENABLED
    value, headers = fastcodec.encode_execution(p, TRACEPARENT, p.execution_id)
    reference = encode(
        "ExecutionRecorded", execution_record(p), traceparent=TRACEPARENT, event_id=p.execution_id
    )
    assert value == reference.value
    assert list(headers) == reference.headers
    decoded = decode(value, headers)
    assert decoded.record == execution_record(p)
    assert decoded.event_id == p.execution_id
    assert decoded.traceparent == TRACEPARENT


def test_layout_is_the_registry_schema() -> None:
    from dspy_flywheel.contracts.registry import default_registry

    fields = default_registry().current["ExecutionRecorded"].schema["fields"]
    assert [(f["name"], f["type"]) for f in fields] == fastcodec.LAYOUT
