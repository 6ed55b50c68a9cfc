"""Avro single-object encoding with an envelope in Kafka headers.

Wire value: ``C3 01`` + 8-byte CRC-64-AVRO fingerprint (little-endian) + Avro body.
Headers: ``event_id`` (UUIDv7), ``event_type``, ``schema_fp`` (hex), ``traceparent`` (W3C).

Errors::

    DecodeError (ValueError)
    ├── UnknownFingerprint   writer schema not in the registry (current or history)
    ├── CorruptPayload       bad marker, short or undecodable body
    ├── InvalidRecord        decoded, but a field or the event_id header breaks the limits
    │                        of :mod:`~dspy_flywheel.contracts.validate` (``reason`` says which)
    └── UnknownEventType     type not in the registry, or its class and schema disagree
                             (also raised by encode)

A malformed ``traceparent`` header is dropped (tracing is optional), not an error.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, NamedTuple

from fastavro import schemaless_reader, schemaless_writer

from dspy_flywheel.contracts.events import EVENTS, Event, InvalidEvent, field_names
from dspy_flywheel.contracts.flat import FlatReader, TrailingBytes, compile_reader, compile_writer
from dspy_flywheel.contracts.ids import new_id
from dspy_flywheel.contracts.registry import SchemaEntry, SchemaRegistry, default_registry
from dspy_flywheel.contracts.validate import (
    InvalidInput,
    check_event_id,
    check_record,
    valid_traceparent,
)

MARKER: Final = b"\xc3\x01"
HEADER_LEN: Final = 10

Headers = list[tuple[str, bytes]]


class DecodeError(ValueError):
    retriable: ClassVar[bool] = False
    reason: str = "undecodable"  # the DLQ's dlq_reason


class UnknownFingerprint(DecodeError):
    reason = "unknown_schema"


class CorruptPayload(DecodeError):
    reason = "corrupt_payload"


class UnknownEventType(DecodeError):
    reason = "unknown_event_type"


class InvalidRecord(DecodeError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Encoded(NamedTuple):
    value: bytes
    headers: Headers
    event_id: str
    event_type: str


@dataclass(frozen=True)
class Decoded:
    event: Event
    event_id: str | None = None
    traceparent: str | None = None
    headers: dict[str, bytes] = field(default_factory=dict)

    @property
    def event_type(self) -> str:
        return self.event.event_type


def encode(
    event: Event,
    *,
    traceparent: str | None = None,
    event_id: str | None = None,
    registry: SchemaRegistry | None = None,
) -> Encoded:
    """The wire value and envelope headers of ``event``; ValueError when a field's value does
    not fit its schema type."""
    reg = registry or default_registry()
    event_type = event.event_type
    entry = reg.current.get(event_type)
    if entry is None:
        raise UnknownEventType(f"unknown event type {event_type!r}; known: {sorted(reg.current)}")
    writer = _writer(entry, type(event))
    try:
        body = writer.write(event)
    except Exception as exc:  # the writers raise assorted errors on values of the wrong type
        raise ValueError(f"{event_type} record does not match its schema: {exc!r}") from exc
    eid = event_id or new_id()
    headers: Headers = [("event_id", eid.encode()), writer.type_header, writer.fp_header]
    if traceparent:
        headers.append(("traceparent", traceparent.encode()))
    return Encoded(writer.prefix + body, headers, eid, event_type)


def decode(
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]] | None = None,
    *,
    registry: SchemaRegistry | None = None,
    check: bool = True,
) -> Decoded:
    """The event in ``value``; with ``check`` (always, for consumers) its fields and event id
    must pass :mod:`~dspy_flywheel.contracts.validate` (InvalidRecord otherwise). Only tools
    that show a refused record to an operator pass ``check=False``."""
    reg = registry or default_registry()
    if value is None or len(value) < HEADER_LEN or value[:2] != MARKER:
        raise CorruptPayload("not an Avro single-object message (missing C3 01 marker)")
    fingerprint = value[2:HEADER_LEN]
    writer = reg.by_fingerprint.get(fingerprint)
    if writer is None:
        raise UnknownFingerprint(f"unknown writer schema fingerprint {fingerprint.hex()}")
    reader = reg.current.get(writer.event_type, writer)
    flat = _flat_reader(writer) if reader is writer else None
    record: Any
    try:
        if flat is not None:
            record = flat.read(value, HEADER_LEN)
        else:
            body = io.BytesIO(value[HEADER_LEN:])
            record = schemaless_reader(body, writer.schema, reader.schema)
            if body.tell() != len(value) - HEADER_LEN:
                raise TrailingBytes("trailing bytes after the record")
    except TrailingBytes as exc:
        raise CorruptPayload(f"{writer.event_type}: {exc}") from exc
    except Exception as exc:  # fastavro and the flat reader raise assorted errors on bad bodies
        raise CorruptPayload(f"{writer.event_type}: corrupt body: {exc!r}") from exc
    assert isinstance(record, dict)
    hdrs = {k: v for k, v in (headers or []) if v is not None}
    raw_id = hdrs.get("event_id")
    try:
        event_id = check_event_id(raw_id) if raw_id is not None else None
        if check:
            check_record(record)
    except InvalidInput as exc:
        if check:
            raise InvalidRecord(exc.reason, f"{writer.event_type}: {exc}") from None
        event_id = raw_id.decode(errors="replace") if raw_id is not None else None
    try:
        event = EVENTS[writer.event_type].from_record(record)
    except InvalidEvent as exc:  # the schema and its class disagree: a bug, not bad input
        raise UnknownEventType(str(exc)) from exc
    return Decoded(
        event=event,
        event_id=event_id,
        traceparent=valid_traceparent(hdrs.get("traceparent")),
        headers=hdrs,
    )


class _Writer(NamedTuple):
    """How one event class is written under one schema: what is the same for every event."""

    write: Callable[[Event], bytes]  # the Avro body
    prefix: bytes  # marker + fingerprint
    type_header: tuple[str, bytes]
    fp_header: tuple[str, bytes]


_writers: dict[tuple[bytes, type[Event]], _Writer] = {}
_flat_readers: dict[bytes, FlatReader | None] = {}


def _writer(entry: SchemaEntry, cls: type[Event]) -> _Writer:
    """The writer of ``cls`` under ``entry``'s schema (compiled once per pair)."""
    key = (entry.fingerprint, cls)
    writer = _writers.get(key)
    if writer is None:
        writer = _writers[key] = _compile_writer(entry, cls)
    return writer


def _compile_writer(entry: SchemaEntry, cls: type[Event]) -> _Writer:
    schema_fields = [f["name"] for f in entry.schema["fields"]]
    if list(field_names(cls)) != schema_fields:
        raise UnknownEventType(
            f"{cls.__name__} has fields {list(field_names(cls))}, "
            f"its schema {entry.fingerprint.hex()} has {schema_fields}"
        )
    flat = compile_writer(entry.schema)

    def write_with_fastavro(event: Event) -> bytes:
        buf = io.BytesIO()
        schemaless_writer(buf, entry.schema, event.to_record())
        return buf.getvalue()

    return _Writer(
        flat.write if flat is not None else write_with_fastavro,
        MARKER + entry.fingerprint,
        ("event_type", entry.event_type.encode()),
        ("schema_fp", entry.fingerprint.hex().encode()),
    )


def _flat_reader(entry: SchemaEntry) -> FlatReader | None:
    """The fast reader for a flat schema (compiled once per fingerprint), else None."""
    if entry.fingerprint not in _flat_readers:
        _flat_readers[entry.fingerprint] = compile_reader(entry.schema)
    return _flat_readers[entry.fingerprint]
