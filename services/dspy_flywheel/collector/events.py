"""What the collector reads: raw Kafka messages, parsed into executions, feedback or rejects.

``parse(raw, expected)`` never raises: a message that cannot be decoded or is invalid
becomes a :class:`Rejected` with a short ``reason`` (it goes to the dead-letter topic).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from dspy_flywheel.contracts.codec import DecodeError, decode
from dspy_flywheel.contracts.events import ExecutionRecorded, FeedbackRecorded
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


def _required(value: str, name: str) -> str:
    if not value.strip():
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


def _execution(event_id: str, e: ExecutionRecorded) -> Execution:
    return Execution(
        event_id=event_id,
        worker_id=_required(e.worker_id, "worker_id"),
        worker_type=e.worker_type,
        program_version=e.program_version,
        execution_id=_required(e.execution_id, "execution_id"),
        inputs=_json_object(e.inputs_json, "inputs", nullable=False) or {},
        outputs=_json_object(e.outputs_json, "outputs", nullable=True),
        success=e.success,
        latency_ms=e.latency_ms,
        lm_calls=e.lm_calls,
        prompt_tokens=e.prompt_tokens,
        completion_tokens=e.completion_tokens,
        metric_score=_score(e.metric_score, "metric_score"),
        timestamp_ms=e.timestamp_ms,
    )


def _feedback(event_id: str, e: FeedbackRecorded) -> Feedback:
    if e.label is None and e.score is None:
        raise _Invalid("empty_feedback", "feedback has neither label nor score")
    return Feedback(
        event_id=event_id,
        worker_id=_required(e.worker_id, "worker_id"),
        execution_id=_required(e.execution_id, "execution_id"),
        label=_label(e.label),
        score=_score(e.score, "score"),
        source=e.source or "user",
        timestamp_ms=e.timestamp_ms,
    )


Carried = type[ExecutionRecorded] | type[FeedbackRecorded]


def parse(raw: RawMessage, expected: Carried) -> Parsed:
    """Decode and validate one message read from a topic carrying ``expected`` events."""
    try:
        event = decode(raw.value, raw.headers).event
    except DecodeError as exc:
        return Rejected(raw, exc.reason, str(exc))
    try:
        if isinstance(event, ExecutionRecorded) and expected is ExecutionRecorded:
            return _execution(raw.idempotency_key, event)
        if isinstance(event, FeedbackRecorded) and expected is FeedbackRecorded:
            return _feedback(raw.idempotency_key, event)
    except _Invalid as exc:
        return Rejected(raw, exc.reason, str(exc))
    except (ValueError, TypeError, KeyError, RecursionError, OverflowError) as exc:
        return Rejected(raw, "invalid_record", f"{type(exc).__name__}: {exc}")
    return Rejected(
        raw, "unexpected_event_type", f"{event.event_type} on a topic for {expected.event_type}"
    )
