"""Schemas by event type (current) and by fingerprint (current + frozen history).

Each event type's schema is ``<dir>/dspy_flywheel.events.<Name>.avsc``; every schema ever
released is kept as ``<dir>/history/<Name>/<fingerprint>.avsc``. The fingerprint is the
CRC-64-AVRO of the schema's Parsing Canonical Form (8 bytes, little-endian), as single-object
encoding writes it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fastavro.schema import fingerprint, load_schema, parse_schema, to_parsing_canonical_form

from dspy_flywheel.contracts.events import EVENT_TYPES

NAMESPACE: Final = "dspy_flywheel.events"


def schemas_dir() -> Path:
    """``$FLYWHEEL_SCHEMAS_DIR``, else the repository's ``schemas/``, else the packaged copy."""
    env = os.environ.get("FLYWHEEL_SCHEMAS_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3] / "schemas"
    return repo if repo.is_dir() else Path(__file__).resolve().parent / "schemas"


def schema_path(event_type: str, directory: Path | None = None) -> Path:
    return (directory or schemas_dir()) / f"{NAMESPACE}.{event_type}.avsc"


def schema_fingerprint(parsed_schema: Any) -> bytes:
    """The 8-byte CRC-64-AVRO fingerprint that single-object encoding writes."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed_schema), "CRC-64-AVRO"))


@dataclass(frozen=True)
class SchemaEntry:
    event_type: str
    schema: Any  # fastavro parsed schema
    fingerprint: bytes


class SchemaRegistry:
    """Loads ``<namespace>.<Name>.avsc`` plus ``history/<Name>/*.avsc`` from a directory."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or schemas_dir()
        self.current: dict[str, SchemaEntry] = {}
        self.by_fingerprint: dict[bytes, SchemaEntry] = {}
        for event_type in EVENT_TYPES:
            path = schema_path(event_type, self.directory)
            if path.exists():
                self.add(event_type, load_schema(str(path)), current=True)
            history = self.directory / "history" / event_type
            for old in sorted(history.glob("*.avsc")) if history.is_dir() else []:
                self.add(event_type, parse_schema(json.loads(old.read_text())), current=False)

    def add(self, event_type: str, schema: Any, *, current: bool) -> SchemaEntry:
        entry = SchemaEntry(event_type, schema, schema_fingerprint(schema))
        self.by_fingerprint.setdefault(entry.fingerprint, entry)
        if current:
            self.current[event_type] = entry
        return entry


_default: SchemaRegistry | None = None


def default_registry() -> SchemaRegistry:
    global _default
    if _default is None:
        _default = SchemaRegistry()
    return _default
