"""What the collector reads: raw Kafka messages, parsed into executions, feedback or rejects.

``parse(raw, expected_type)`` never raises: a message that cannot be decoded or is invalid
becomes a :class:`Rejected` with a short ``reason`` (it goes to the dead-letter topic).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from dspy_flywheel.contracts.codec import DecodeError, decode
from dspy_flywheel.contracts.validate import InvalidInput, check_event_id, check_id

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class RawMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)
    token: Any = field(default=None, compare=False, repr=False)  # the engine's handle to ack

    @property
    def coordinates(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def idempotency_key(self) -> str:
        """The event id header; the Kafka coordinates when it is missing or malformed."""
        for key, value in self.headers:
            if key == "event_id" and value is not None:
                try:
                    return check_event_id(value)
                except InvalidInput:
                    break
        return f"kafka:{self.coordinates}"


@dataclass(slots=True)
class Execution:
    event_id: str
    worker_id: str
    worker_type: str
    program_version: str | None
    execution_id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    success: bool
    latency_ms: float
    lm_calls: int
    prompt_tokens: int
    completion_tokens: int
    metric_score: float | None
    timestamp_ms: int
    input_hash: bytes = b""  # set once inputs are anonymized (collector.prepare)


@dataclass(slots=True)
class Feedback:
    event_id: str
    worker_id: str
    execution_id: str
    label: Any  # a dict of output fields, a bare string, or None (score-only feedback)
    score: float | None
    source: str
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Rejected:
    message: RawMessage
    reason: str
    detail: str

    @property
    def event_id(self) -> str:
        return self.message.idempotency_key

    @property
    def worker_id(self) -> str:
        """The record key when it is a well-formed worker id, else "" (for the drop counters)."""
        try:
            return check_id(self.message.key.decode(), "key") if self.message.key else ""
        except (UnicodeDecodeError, InvalidInput):
            return ""


Parsed = Execution | Feedback | Rejected


class _Invalid(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _json_object(text: str | None, what: str, *, nullable: bool) -> dict[str, Any] | None:
    if text is None:
        if nullable:
            return None
        raise _Invalid(f"invalid_{what}", f"{what} is null")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise _Invalid(f"invalid_{what}", f"{what} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise _Invalid(f"invalid_{what}", f"{what} is a JSON {type(value).__name__}, not an object")
    return value


def _score(value: float | None, what: str) -> float | None:
    if value is not None and (math.isnan(value) or not 0.0 <= value <= 1.0):
        raise _Invalid("invalid_score", f"{what} {value!r} is outside [0, 1]")
    return value


def _required(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("missing_id", f"{name} is empty")
    return value


def _label(text: str | None) -> Any:
    """A JSON object label stays a dict; a JSON string literal is unquoted; any other text is
    a bare single-output value as written."""
    if text is None:
        return None
    stripped = text.lstrip()
    if stripped[:1] in ("{", '"'):
        try:
            value = json.loads(text)
        except ValueError:
            return text
        if isinstance(value, dict | str):
            return value
    return text


def _execution(event_id: str, r: dict[str, Any]) -> Execution:
    return Execution(
        event_id=event_id,
        worker_id=_required(r, "worker_id"),
        worker_type=r["worker_type"],
        program_version=r.get("program_version"),
        execution_id=_required(r, "execution_id"),
        inputs=_json_object(r["inputs_json"], "inputs", nullable=False) or {},
        outputs=_json_object(r.get("outputs_json"), "outputs", nullable=True),
        success=bool(r["success"]),
        latency_ms=float(r["latency_ms"]),
        lm_calls=int(r.get("lm_calls") or 0),
        prompt_tokens=int(r.get("prompt_tokens") or 0),
        completion_tokens=int(r.get("completion_tokens") or 0),
        metric_score=_score(r.get("metric_score"), "metric_score"),
        timestamp_ms=int(r["timestamp_ms"]),
    )


def _feedback(event_id: str, r: dict[str, Any]) -> Feedback:
    label, score = r.get("label"), r.get("score")
    if label is None and score is None:
        raise _Invalid("empty_feedback", "feedback has neither label nor score")
    return Feedback(
        event_id=event_id,
        worker_id=_required(r, "worker_id"),
        execution_id=_required(r, "execution_id"),
        label=_label(label),
        score=_score(score, "score"),
        source=r.get("source") or "user",
        timestamp_ms=int(r["timestamp_ms"]),
    )


def parse(raw: RawMessage, expected_type: str) -> Parsed:
    """Decode and validate one message read from a topic carrying ``expected_type``."""
    try:
        decoded = decode(raw.value, raw.headers)
    except DecodeError as exc:
        return Rejected(raw, exc.reason, str(exc))
    if decoded.event_type != expected_type:
        return Rejected(
            raw, "unexpected_event_type", f"{decoded.event_type} on a topic for {expected_type}"
        )
    try:
        if expected_type == "ExecutionRecorded":
            return _execution(raw.idempotency_key, decoded.record)
        return _feedback(raw.idempotency_key, decoded.record)
    except _Invalid as exc:
        return Rejected(raw, exc.reason, str(exc))
    except (ValueError, TypeError, KeyError, RecursionError, OverflowError) as exc:
        return Rejected(raw, "invalid_record", f"{type(exc).__name__}: {exc}")
