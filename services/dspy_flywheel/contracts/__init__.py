"""Event contracts: topic names, Avro schemas and the single-object wire codec."""

from dspy_flywheel.contracts.codec import (
    CorruptPayload,
    Decoded,
    DecodeError,
    Encoded,
    InvalidRecord,
    UnknownEventType,
    UnknownFingerprint,
    decode,
    encode,
)
from dspy_flywheel.contracts.events import EVENT_TYPES, EventType
from dspy_flywheel.contracts.topics import Topics

__all__ = [
    "EVENT_TYPES",
    "CorruptPayload",
    "DecodeError",
    "Decoded",
    "Encoded",
    "EventType",
    "InvalidRecord",
    "Topics",
    "UnknownEventType",
    "UnknownFingerprint",
    "decode",
    "encode",
]
