"""Event contracts: typed events, topic names, Avro schemas and the single-object wire codec."""

from dspy_flywheel.contracts.codec import (
    CorruptPayload,
    DecodeError,
    InvalidRecord,
    UnknownEventType,
    UnknownFingerprint,
    decode,
    encode,
)
from dspy_flywheel.contracts.events import (
    EVENT_TYPES,
    EVENTS,
    Alert,
    Event,
    ExecutionRecorded,
    FeedbackRecorded,
    InvalidEvent,
    OptimizationRequested,
    OptimizationStatusChanged,
    ProgramAcknowledged,
    ProgramUpdated,
    RolloutChanged,
    RolloutCommand,
    RolloutConfig,
    TriggerConfig,
)
from dspy_flywheel.contracts.topics import Topics

__all__ = [
    "EVENTS", "EVENT_TYPES", "Alert", "CorruptPayload", "DecodeError", "Event", "ExecutionRecorded",
    "FeedbackRecorded", "InvalidEvent", "InvalidRecord", "OptimizationRequested",
    "OptimizationStatusChanged", "ProgramAcknowledged", "ProgramUpdated", "RolloutChanged",
    "RolloutCommand", "RolloutConfig", "Topics", "TriggerConfig", "UnknownEventType",
    "UnknownFingerprint", "decode", "encode",
]  # fmt: skip
