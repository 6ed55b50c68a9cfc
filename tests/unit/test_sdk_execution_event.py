"""A worker's ExecutionRecorded, as its IO loop encodes it, is what fastavro reads from the .avsc
(and the reverse), for randomized calls.

The expected record is written out here by field name, independently of the SDK; fastavro
loads ``schemas/dspy_flywheel.events.ExecutionRecorded.avsc`` itself. A field encoded out of
the schema's order, or from the wrong part of the call, fails.
"""

from __future__ import annotations

import io
import json
import random
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import load_schema

from dspy_flywheel.contracts.codec import HEADER_LEN, MARKER, decode, encode
from dspy_flywheel.contracts.registry import default_registry, schema_path
from dspy_flywheel.sdk.emitter import ExecutionRoute, execution_pending
from dspy_flywheel.sdk.events import ExecutionPayload

AVSC = load_schema(str(schema_path("ExecutionRecorded")))
ROUTE = ExecutionRoute("executions", b"w")
TEXT = 'aé€𝄞 \n"{\\'


def text(rng: random.Random) -> str:
    return "".join(rng.choice(TEXT) for _ in range(rng.randrange(40)))


def ident(rng: random.Random) -> str:
    """An id that decode's edge validation accepts (printable, no surrounding space)."""
    return "id-" + "".join(rng.choice('aé€𝄞{"\\') for _ in range(rng.randrange(20)))


def random_payload(rng: random.Random) -> ExecutionPayload:
    failed = rng.random() < 0.3
    return ExecutionPayload(
        worker_id=ident(rng),
        worker_type=text(rng),
        program_version=rng.choice([None, 0, 7, 2**31 - 1]),
        execution_id=ident(rng),
        inputs={text(rng): rng.choice([text(rng), 1.5, None, [1, {"k": True}]])},
        outputs=None if failed else {"label": text(rng), "n": rng.randrange(-(2**40), 2**40)},
        error=f"RuntimeError: {text(rng)}" if failed else None,
        latency_ms=rng.choice([0.0, rng.random() * 1e4, 1e300]),
        lm_calls=rng.randrange(0, 2**31),
        prompt_tokens=rng.choice([0, 1, 63, 64, 2**62, rng.randrange(2**40)]),
        completion_tokens=rng.choice([0, 64, -1 + 2**63, rng.randrange(2**20)]),
        timestamp_ms=rng.randrange(0, 2**45),
    )


def expected_record(p: ExecutionPayload) -> dict[str, Any]:
    dumps = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731
    return {
        "worker_id": p.worker_id,
        "worker_type": p.worker_type,
        "program_version": None if p.program_version is None else str(p.program_version),
        "execution_id": p.execution_id,
        "inputs_json": dumps(p.inputs),
        "outputs_json": None if p.outputs is None else dumps(p.outputs),
        "success": p.error is None,
        "error": p.error,
        "latency_ms": p.latency_ms,
        "lm_calls": p.lm_calls,
        "prompt_tokens": p.prompt_tokens,
        "completion_tokens": p.completion_tokens,
        "metric_score": None,
        "timestamp_ms": p.timestamp_ms,
    }


def emitted_value(p: ExecutionPayload) -> bytes:
    """What the emitter's IO loop sends for this call (the worker submits it as a tuple)."""
    pending = execution_pending(ROUTE, tuple(p))
    assert pending.build is not None
    return encode(pending.build(pending.payload), event_id=pending.event_id).value


def test_fastavro_reads_what_the_worker_emits() -> None:
    rng = random.Random(1)
    for _ in range(300):
        p = random_payload(rng)
        value = emitted_value(p)
        assert value[:2] == MARKER
        body = io.BytesIO(value[HEADER_LEN:])
        assert schemaless_reader(body, AVSC, None) == expected_record(p)
        assert body.read() == b""


def test_the_worker_emits_what_fastavro_writes_and_decodes_it_back() -> None:
    rng = random.Random(2)
    fingerprint = default_registry().current["ExecutionRecorded"].fingerprint
    for _ in range(300):
        p = random_payload(rng)
        buf = io.BytesIO()
        schemaless_writer(buf, AVSC, expected_record(p))
        assert emitted_value(p) == MARKER + fingerprint + buf.getvalue()
        event = decode(MARKER + fingerprint + buf.getvalue()).event
        assert event.to_record() == expected_record(p)
