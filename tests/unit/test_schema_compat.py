"""Frozen-history compatibility: every released schema stays readable both ways."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dspy_flywheel.contracts.compat import freeze, full_incompatibilities
from dspy_flywheel.contracts.events import EVENT_TYPES
from dspy_flywheel.contracts.registry import SchemaRegistry, schemas_dir


def test_every_event_type_has_a_frozen_history() -> None:
    registry = SchemaRegistry()
    frozen = {e.event_type for e in registry.by_fingerprint.values()}
    assert set(EVENT_TYPES) <= frozen
    for event_type in EVENT_TYPES:
        current = registry.current[event_type]
        assert current.fingerprint in registry.by_fingerprint, (
            f"{event_type} changed without `flywheel schemas freeze`"
        )


def test_history_is_compatible_with_current_in_both_directions() -> None:
    registry = SchemaRegistry()
    problems = []
    for old in registry.by_fingerprint.values():
        current = registry.current[old.event_type]
        problems += full_incompatibilities(old.schema, current.schema)
    assert problems == []


@pytest.fixture
def temp_schemas(tmp_path: Path) -> Path:
    shutil.copytree(schemas_dir(), tmp_path / "schemas")
    return tmp_path / "schemas"


def _edit(directory: Path, event_type: str, new_field: dict[str, object]) -> None:
    path = directory / f"dspy_flywheel.events.{event_type}.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append(new_field)
    path.write_text(json.dumps(schema))


def _problems(directory: Path) -> list[str]:
    registry = SchemaRegistry(directory)
    out = []
    for old in registry.by_fingerprint.values():
        out += full_incompatibilities(old.schema, registry.current[old.event_type].schema)
    return out


def test_adding_a_field_without_default_breaks_compatibility(temp_schemas: Path) -> None:
    _edit(temp_schemas, "FeedbackRecorded", {"name": "tenant", "type": "string"})
    problems = _problems(temp_schemas)
    assert problems, "a required field added to a frozen schema must be flagged"
    assert all(p.startswith("backward") for p in problems)
    assert "tenant" in " ".join(problems)


def test_adding_a_field_with_default_is_compatible(temp_schemas: Path) -> None:
    _edit(
        temp_schemas,
        "FeedbackRecorded",
        {"name": "tenant", "type": ["null", "string"], "default": None},
    )
    assert _problems(temp_schemas) == []
    registry = SchemaRegistry(temp_schemas)
    assert len(freeze(registry)) == 1  # the new version joins the history
