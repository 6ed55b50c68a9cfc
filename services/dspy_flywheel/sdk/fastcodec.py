"""ExecutionRecorded, the one event per worker call, encoded straight from the call's payload.

Same bytes and envelope as ``contracts.codec.encode`` (single-object encoding, headers
``event_id``/``event_type``/``schema_fp``/``traceparent``) at about a third of the cost: no
record dict, no schema walk. It only runs when the registry's current ExecutionRecorded schema
has exactly the layout written here; after a schema change it turns itself off (with a warning)
and ``codec.encode`` is used until this file is updated. ``tests/unit/test_sdk_fastcodec.py``
compares it byte for byte with the codec.
"""

from __future__ import annotations

import json
import logging
import struct

from dspy_flywheel.contracts.codec import MARKER
from dspy_flywheel.contracts.registry import default_registry
from dspy_flywheel.sdk.events import ExecutionPayload, jsonable

log = logging.getLogger(__name__)

EVENT_TYPE = "ExecutionRecorded"
LAYOUT = [
    ("worker_id", "string"),
    ("worker_type", "string"),
    ("program_version", ["null", "string"]),
    ("execution_id", "string"),
    ("inputs_json", "string"),
    ("outputs_json", ["null", "string"]),
    ("success", "boolean"),
    ("error", ["null", "string"]),
    ("latency_ms", "double"),
    ("lm_calls", "int"),
    ("prompt_tokens", "long"),
    ("completion_tokens", "long"),
    ("metric_score", ["null", "double"]),
    ("timestamp_ms", "long"),
]

_double = struct.Struct("<d").pack
_json = json.JSONEncoder(default=jsonable, ensure_ascii=False).encode


def _layout_matches() -> tuple[bool, bytes]:
    entry = default_registry().current.get(EVENT_TYPE)
    if entry is None:
        return False, b""
    fields = [(f["name"], f["type"]) for f in entry.schema["fields"]]
    return fields == LAYOUT, entry.fingerprint


ENABLED, _FINGERPRINT = _layout_matches()
if not ENABLED:
    log.warning("ExecutionRecorded schema changed: using the generic codec for worker events")
_PREFIX = MARKER + _FINGERPRINT
_TYPE_HEADER = ("event_type", EVENT_TYPE.encode())
_FP_HEADER = ("schema_fp", _FINGERPRINT.hex().encode())


def _long(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)  # zigzag
    if n < 0x80:
        return _BYTE[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_BYTE = tuple(bytes((i,)) for i in range(0x80))


def _string(text: str) -> bytes:
    raw = text.encode()
    return _long(len(raw)) + raw


def _optional_string(text: str | None) -> bytes:
    return b"\x00" if text is None else b"\x02" + _string(text)


# Envelope, worker_id, worker_type and program_version are the same for every call of a
# worker: encoded once per (worker_id, worker_type, version).
_prefixes: dict[tuple[str, str, int | None], bytes] = {}


def _prefix(worker_id: str, worker_type: str, version: int | None) -> bytes:
    key = (worker_id, worker_type, version)
    prefix = _prefixes.get(key)
    if prefix is None:
        if len(_prefixes) > 1024:  # many short-lived workers or versions: start over
            _prefixes.clear()
        prefix = b"".join(
            (
                _PREFIX,
                _string(worker_id),
                _string(worker_type),
                b"\x00" if version is None else b"\x02" + _string(str(version)),
            )
        )
        _prefixes[key] = prefix
    return prefix


def encode_execution(
    p: ExecutionPayload, traceparent: str, event_id: str
) -> tuple[bytes, tuple[tuple[str, bytes], ...]]:
    """(value, headers) of the ExecutionRecorded event for ``p``."""
    raw_id = event_id.encode()
    inputs = _json(p.inputs).encode()
    outputs = p.outputs
    error = p.error
    body = b"".join(
        (
            _prefix(p.worker_id, p.worker_type, p.program_version),
            _string(p.execution_id) if p.execution_id != event_id else _long(len(raw_id)) + raw_id,
            _long(len(inputs)),
            inputs,
            b"\x00" if outputs is None else b"\x02" + _string(_json(outputs)),
            b"\x01\x00" if error is None else b"\x00\x02" + _string(error),  # success, error
            _double(p.latency_ms),
            _long(p.lm_calls),
            _long(p.prompt_tokens),
            _long(p.completion_tokens),
            b"\x00",  # metric_score: the worker scores feedback, not calls
            _long(p.timestamp_ms),
        )
    )
    headers = (
        ("event_id", raw_id),
        _TYPE_HEADER,
        _FP_HEADER,
        ("traceparent", traceparent.encode()),
    )
    return body, headers
