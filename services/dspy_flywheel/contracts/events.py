"""Event type names and where their Avro schemas live."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final, Literal, get_args

NAMESPACE: Final = "dspy_flywheel.events"

EventType = Literal[
    "ExecutionRecorded",
    "FeedbackRecorded",
    "OptimizationRequested",
    "OptimizationStatusChanged",
    "ProgramUpdated",
    "ProgramAcknowledged",
    "TriggerConfig",
    "Alert",
    "RolloutChanged",
    "RolloutConfig",
    "RolloutCommand",
]

EVENT_TYPES: Final[tuple[str, ...]] = get_args(EventType)


def schemas_dir() -> Path:
    """``$FLYWHEEL_SCHEMAS_DIR``, else the repository's ``schemas/``, else the packaged copy."""
    env = os.environ.get("FLYWHEEL_SCHEMAS_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3] / "schemas"
    if repo.is_dir():
        return repo
    return Path(__file__).resolve().parent / "schemas"


def schema_path(event_type: str, directory: Path | None = None) -> Path:
    return (directory or schemas_dir()) / f"{NAMESPACE}.{event_type}.avsc"
