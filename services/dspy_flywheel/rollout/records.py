"""Rollout events: ``RolloutChanged`` (assignment + decision), its ``Alert``, ``RolloutCommand``
(operators), and the reading side that workers and the manager share."""

from __future__ import annotations

import json
from dataclasses import replace

from dspy_flywheel.contracts.events import Alert, RolloutChanged, RolloutCommand
from dspy_flywheel.contracts.ids import new_id
from dspy_flywheel.rollout.controller import Decision
from dspy_flywheel.rollout.state import Assignment


def changed_event(decision: Decision) -> RolloutChanged:
    a = decision.assignment
    return RolloutChanged(
        worker_id=decision.worker_id,
        sequence=decision.sequence,
        decision=decision.decision,
        stable_version=a.stable,
        candidate_version=a.candidate,
        candidate_share=a.share,
        pinned=a.pinned,
        reason=decision.reason,
        evidence_json=json.dumps(decision.evidence, sort_keys=True, default=str),
        decided_by=decision.decided_by,
        command_id=decision.command_id,
        job_id=decision.job_id,
        timestamp_ms=decision.at_ms,
    )


def alert_event(decision: Decision) -> Alert:
    details = {
        "sequence": decision.sequence,
        "job_id": decision.job_id,
        "command_id": decision.command_id,
        "evidence": decision.evidence,
    }
    return Alert(
        alert_id=new_id(),
        worker_id=decision.worker_id,
        severity=decision.severity,
        kind=f"rollout_{decision.decision}",
        message=f"{decision.worker_id}: {decision.decision.replace('_', ' ')}: "
        f"{decision.reason} (now {decision.assignment.describe()})",
        details_json=json.dumps(details, sort_keys=True, default=str),
        timestamp_ms=decision.at_ms,
    )


def assignment_of(e: RolloutChanged) -> Assignment:
    """The assignment a ``RolloutChanged`` announces (what the workers serve);
    ValueError when it cannot be one."""
    share, candidate = e.candidate_share, e.candidate_version
    if not 0.0 <= share <= 1.0 or (candidate is None and share):
        raise ValueError(f"bad rollout assignment: candidate {candidate} at share {share}")
    return Assignment(e.stable_version, candidate, share, e.pinned)


COMMANDS = ("promote", "rollback", "pin", "unpin")


def command_event(
    worker_id: str,
    command: str,
    version: int | None,
    requested_by: str,
    reason: str | None,
    timestamp_ms: int,
) -> RolloutCommand:
    check_command(command, version)
    return RolloutCommand(
        command_id=new_id(),
        worker_id=worker_id,
        command=command,
        version=version,
        requested_by=requested_by,
        reason=reason,
        timestamp_ms=timestamp_ms,
    )


def check_command(command: str, version: int | None) -> None:
    """What an operator may ask (the CLI before it sends, the service when it reads)."""
    if command not in COMMANDS:
        raise ValueError(f"command must be one of {COMMANDS}, got {command!r}")
    if version is not None and version < 1:
        raise ValueError(f"version must be >= 1, got {version}")


def command_of(e: RolloutCommand) -> RolloutCommand:
    """The command as the controller applies it (``requested_by`` "system" when empty);
    ValueError (the record goes to the DLQ) when it asks nothing a rollout can do."""
    check_command(e.command, e.version)
    return replace(e, requested_by=e.requested_by or "system")
