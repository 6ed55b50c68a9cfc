"""One class per event type: the records of ``schemas/dspy_flywheel.events.<Name>.avsc``, typed.

Each class mirrors its schema field for field: name, type and default, in the schema's order.
The ``.avsc`` stays the one source of truth: the codec writes and reads fields by the schema's
names and order, refuses a class whose fields differ from its schema, and
``tests/unit/test_events.py`` checks types and defaults too. Events are built with keywords;
``to_record`` / ``from_record`` convert to and from plain dicts (fastavro's records, the outbox
tables). ``*_json`` fields hold JSON text, as on the wire.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Final, Self


class InvalidEvent(ValueError):
    """A record that cannot be the event: a required field missing, or an unknown one."""

    retriable: ClassVar[bool] = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of the event classes; ``event_type`` is the class name of the direct subclass."""

    event_type: ClassVar[str]

    def __init_subclass__(cls) -> None:  # no super(): slots=True rebuilt this class
        if Event in cls.__bases__:
            cls.event_type = cls.__name__

    def to_record(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in field_names(type(self))}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Self:
        """The event of a record with exactly its fields (fields with defaults may be absent)."""
        try:
            return cls(**record)
        except TypeError as exc:
            raise InvalidEvent(f"{cls.event_type} record: {exc}") from exc


_field_names: dict[type[Event], tuple[str, ...]] = {}


def field_names(cls: type[Event]) -> tuple[str, ...]:
    """The names of ``cls``'s fields, in order (computed once per class)."""
    names = _field_names.get(cls)
    if names is None:
        names = _field_names[cls] = tuple(f.name for f in fields(cls))
    return names


def now_ms() -> int:
    """Event time: ms since the epoch (UTC)."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionRecorded(Event):
    worker_id: str
    worker_type: str
    program_version: str | None = None
    execution_id: str
    inputs_json: str
    outputs_json: str | None = None
    success: bool
    error: str | None = None
    latency_ms: float
    lm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    metric_score: float | None = None
    timestamp_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackRecorded(Event):
    execution_id: str
    worker_id: str
    label: str | None = None
    score: float | None = None
    source: str = "user"
    timestamp_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OptimizationRequested(Event):
    job_id: str
    worker_id: str
    reason: str
    optimizer: str
    optimizer_params_json: str = "{}"
    evidence_json: str = "{}"
    requested_by: str = "system"
    program_ref: str | None = None
    metric_ref: str | None = None
    timestamp_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OptimizationStatusChanged(Event):
    job_id: str
    worker_id: str
    status: str
    progress: float | None = None
    message: str | None = None
    details_json: str = "{}"
    timestamp_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgramUpdated(Event):
    worker_id: str
    version: int
    program_state_json: str
    signature_json: str
    optimizer: str
    job_id: str | None = None
    holdout_before: float | None = None
    holdout_after: float | None = None
    timestamp_ms: int
    rollout: str = "serve"
    adapter_json: str | None = None  # the LoRA adapter it serves (finetune.AdapterArtifact)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgramAcknowledged(Event):
    worker_id: str
    instance_id: str
    version: int | None = None
    status: str
    reason: str | None = None
    timestamp_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerConfig(Event):
    worker_id: str
    enabled: bool = True
    policy: str
    threshold: float = 0.8
    window_size: int = 50
    window_seconds: int | None = None
    min_examples: int = 20
    min_new_examples: int = 0
    cooldown_seconds: int = 600
    interval_seconds: int | None = None
    cron: str | None = None
    optimizer: str = "BootstrapFewShot"
    optimizer_params_json: str = "{}"
    updated_by: str = "system"
    worker_type: str = ""
    program_ref: str | None = None
    metric_ref: str | None = None
    timestamp_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert(Event):
    alert_id: str
    worker_id: str | None = None
    severity: str
    kind: str
    message: str
    details_json: str = "{}"
    timestamp_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutChanged(Event):
    worker_id: str
    sequence: int
    decision: str
    stable_version: int | None = None
    candidate_version: int | None = None
    candidate_share: float = 0.0
    pinned: bool = False
    reason: str = ""
    evidence_json: str = "{}"
    decided_by: str = "controller"
    command_id: str | None = None
    job_id: str | None = None
    timestamp_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutConfig(Event):
    worker_id: str
    enabled: bool = True
    share: float = 0.1
    confidence: float = 0.95
    margin: float = 0.02
    min_samples: int = 50
    max_samples: int = 20000
    max_duration_s: int = 604800
    effect_size: float = 0.05
    updated_by: str = "system"
    timestamp_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutCommand(Event):
    command_id: str
    worker_id: str
    command: str
    version: int | None = None
    requested_by: str = "system"
    reason: str | None = None
    timestamp_ms: int


EVENTS: Final[dict[str, type[Event]]] = {
    cls.event_type: cls
    for cls in (
        ExecutionRecorded,
        FeedbackRecorded,
        OptimizationRequested,
        OptimizationStatusChanged,
        ProgramUpdated,
        ProgramAcknowledged,
        TriggerConfig,
        Alert,
        RolloutChanged,
        RolloutConfig,
        RolloutCommand,
    )
}
EVENT_TYPES: Final[tuple[str, ...]] = tuple(EVENTS)


def event_from_record(event_type: str, record: Mapping[str, Any]) -> Event:
    """The ``event_type`` event of a stored record (an outbox row); InvalidEvent if it is not."""
    cls = EVENTS.get(event_type)
    if cls is None:
        raise InvalidEvent(f"unknown event type {event_type!r}")
    return cls.from_record(record)
