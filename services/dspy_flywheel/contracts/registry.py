"""Schemas by event type (current) and by fingerprint (current + frozen history)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro.schema import load_schema, parse_schema

from dspy_flywheel.contracts.events import EVENT_TYPES, schema_path, schemas_dir
from dspy_flywheel.contracts.fingerprint import schema_fingerprint


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
