"""Rollout events as records: ``RolloutChanged`` (assignment + decision), its ``Alert``,
``RolloutCommand`` (operators), and the reading side that workers and the manager share."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dspy_flywheel.contracts.ids import new_id
from dspy_flywheel.rollout.controller import Command, Decision
from dspy_flywheel.rollout.state import Assignment


def changed_record(decision: Decision) -> dict[str, Any]:
    a = decision.assignment
    return {
        "worker_id": decision.worker_id,
        "sequence": decision.sequence,
        "decision": decision.decision,
        "stable_version": a.stable,
        "candidate_version": a.candidate,
        "candidate_share": a.share,
        "pinned": a.pinned,
        "reason": decision.reason,
        "evidence_json": json.dumps(decision.evidence, sort_keys=True, default=str),
        "decided_by": decision.decided_by,
        "command_id": decision.command_id,
        "job_id": decision.job_id,
        "timestamp_ms": decision.at_ms,
    }


def alert_record(decision: Decision) -> dict[str, Any]:
    return {
        "alert_id": new_id(),
        "worker_id": decision.worker_id,
        "severity": decision.severity,
        "kind": f"rollout_{decision.decision}",
        "message": f"{decision.worker_id}: {decision.decision.replace('_', ' ')}: "
        f"{decision.reason} (now {decision.assignment.describe()})",
        "details_json": json.dumps(
            {
                "sequence": decision.sequence,
                "job_id": decision.job_id,
                "command_id": decision.command_id,
                "evidence": decision.evidence,
            },
            sort_keys=True,
            default=str,
        ),
        "timestamp_ms": decision.at_ms,
    }


@dataclass(frozen=True)
class Changed:
    """A ``RolloutChanged`` as the readers need it."""

    worker_id: str
    sequence: int
    decision: str
    assignment: Assignment
    reason: str
    decided_by: str
    command_id: str | None
    timestamp_ms: int

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> Changed:
        share = float(r.get("candidate_share") or 0.0)
        candidate = r.get("candidate_version")
        if not 0.0 <= share <= 1.0 or (candidate is None and share):
            raise ValueError(f"bad rollout assignment: candidate {candidate} at share {share}")
        return cls(
            str(r["worker_id"]),
            int(r["sequence"]),
            str(r["decision"]),
            Assignment(r.get("stable_version"), candidate, share, bool(r.get("pinned"))),
            str(r.get("reason") or ""),
            str(r.get("decided_by") or ""),
            r.get("command_id"),
            int(r["timestamp_ms"]),
        )


COMMANDS = ("promote", "rollback", "pin", "unpin")


def command_record(
    worker_id: str,
    command: str,
    version: int | None,
    requested_by: str,
    reason: str | None,
    timestamp_ms: int,
) -> dict[str, Any]:
    check_command(command, version)
    return {
        "command_id": new_id(),
        "worker_id": worker_id,
        "command": command,
        "version": version,
        "requested_by": requested_by,
        "reason": reason,
        "timestamp_ms": timestamp_ms,
    }


def check_command(command: str, version: int | None) -> None:
    """What an operator may ask (the CLI before it sends, the service when it reads)."""
    if command not in COMMANDS:
        raise ValueError(f"command must be one of {COMMANDS}, got {command!r}")
    if version is not None and version < 1:
        raise ValueError(f"version must be >= 1, got {version}")


def command_from_record(r: Mapping[str, Any]) -> Command:
    """A ``RolloutCommand``; ValueError (the record goes to the DLQ) when it asks nothing
    a rollout can do."""
    check_command(str(r["command"]), r.get("version"))
    return Command(
        str(r["command_id"]),
        str(r["worker_id"]),
        str(r["command"]),
        r.get("version"),
        str(r.get("requested_by") or "system"),
        r.get("reason"),
    )
