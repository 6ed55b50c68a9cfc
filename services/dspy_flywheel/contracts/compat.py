"""Schema compatibility checks used by the frozen-history test and ``flywheel schemas freeze``.

Two schemas are *fully compatible* when data written with either can be read with the other.
We prove it with fastavro's schema resolution on a sample record generated from the writer.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import parse_schema

from dspy_flywheel.contracts.registry import SchemaRegistry, schema_fingerprint, schema_path

_SAMPLES: dict[str, Any] = {
    "null": None,
    "boolean": True,
    "int": 7,
    "long": 1_700_000_000_000,
    "float": 1.5,
    "double": 0.25,
    "string": "sample",
    "bytes": b"\x00\x01",
}


def sample_value(schema: Any) -> Any:
    if isinstance(schema, str):
        return _SAMPLES[schema]
    if isinstance(schema, list):  # union: prefer a non-null branch to exercise it
        branches = [b for b in schema if b != "null"] or schema
        return sample_value(branches[0])
    kind = schema["type"]
    if kind == "record":
        return {f["name"]: sample_value(f["type"]) for f in schema["fields"]}
    if kind == "array":
        return [sample_value(schema["items"])]
    if kind == "map":
        return {"k": sample_value(schema["values"])}
    if kind == "enum":
        return schema["symbols"][0]
    if kind == "fixed":
        return b"\x00" * schema["size"]
    return sample_value(kind)


def incompatibilities(writer: Any, reader: Any) -> list[str]:
    """Reasons why data written with ``writer`` cannot be read with ``reader`` (empty = fine)."""
    w, r = parse_schema(writer), parse_schema(reader)
    buf = io.BytesIO()
    schemaless_writer(buf, w, sample_value(w))
    buf.seek(0)
    try:
        schemaless_reader(buf, w, r)
    except Exception as exc:
        return [f"{type(exc).__name__}: {exc}"]
    return []


def full_incompatibilities(old: Any, new: Any) -> list[str]:
    """Both directions: old writer / new reader (backward) and new writer / old reader (forward)."""
    back = [f"backward: {m}" for m in incompatibilities(old, new)]
    fwd = [f"forward: {m}" for m in incompatibilities(new, old)]
    return back + fwd


def freeze(registry: SchemaRegistry) -> list[Path]:
    """Copy each current schema into ``history/<Type>/<fingerprint>.avsc`` (idempotent)."""
    written = []
    for event_type, entry in registry.current.items():
        folder = registry.directory / "history" / event_type
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{schema_fingerprint(entry.schema).hex()}.avsc"
        if not path.exists():
            source = schema_path(event_type, registry.directory)
            path.write_text(source.read_text())
            written.append(path)
    return written
