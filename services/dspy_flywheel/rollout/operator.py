"""What operators see and do: a worker's rollout view, commands, canary settings.

Used by the manager API, ``flywheel programs`` and the dashboard. Commands are checked here
first (the worker, the version, that there is something to promote or unpin) and then sent to
the rollout service on ``rollout-commands``, which applies them in order with its automatic
decisions; ``send_command`` waits a moment for the service's answer (its decision row, or the
audit row of a refusal).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from aiokafka import AIOKafkaProducer

from dspy_flywheel.bus.compacted import read_compacted, write_compacted
from dspy_flywheel.bus.publish import publish
from dspy_flywheel.contracts.events import now_ms
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.contracts.validate import check_id
from dspy_flywheel.rollout.config import RolloutPolicy, parse_policy_record
from dspy_flywheel.rollout.records import COMMANDS, command_event
from dspy_flywheel.rollout.sequential import Arm, SequentialConfig, accuracy_interval
from dspy_flywheel.rollout.state import WorkerRollout
from dspy_flywheel.rollout.store import fetch_decisions, fetch_state
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.store import programs
from dspy_flywheel.store.pool import Executor

_TAU = SequentialConfig().tau
# what the view shows of each version's registry row
_SHOWN = ("version", "created_at", "holdout_before", "holdout_after", "gate", "job_id")


class CommandError(ValueError):
    """A command that cannot apply as asked (the caller's to fix)."""

    retriable: ClassVar[bool] = False


def _live(arm: Arm, confidence: float) -> dict[str, Any]:
    interval = accuracy_interval(arm, 1.0 - confidence, _TAU)
    return {
        "labels": arm.labels,
        "correct": arm.correct,
        "accuracy": arm.accuracy,
        "interval": list(interval) if interval else None,
    }


def _status(version: int, s: WorkerRollout | None) -> str:
    if s is None:
        return "published"
    if version == s.stable:
        return "serving (pinned)" if s.pinned else "serving"
    if version == s.candidate:
        return f"candidate ({s.share:.0%})"
    if version in s.rolled_back:
        return "rolled back"
    if version in s.retired:
        return "kept out"
    if version == s.waiting:
        return "waiting (worker pinned)"
    return "published"


async def rollout_view(
    db: Executor, worker_id: str, *, scope: str | None = None, confidence: float = 0.95
) -> dict[str, Any]:
    """Assignment, live accuracy per serving version (with its always-valid interval),
    every version's status and gate record, and the latest decisions."""
    check_id(worker_id, "worker_id")
    raw = await fetch_state(db, worker_id, scope)
    s = WorkerRollout.from_json(raw) if raw else None
    versions = await programs.list_versions(db, worker_id)
    live: dict[str, dict[str, Any]] = {}
    if s is not None:
        name = "code" if s.stable is None else f"v{s.stable}"
        live[name] = _live(s.stable_arm, confidence)
        if s.candidate is not None:
            live[f"v{s.candidate}"] = _live(s.candidate_arm, confidence)
        if s.phase == "guard":
            before = "code" if s.previous is None else f"v{s.previous}"
            live[f"{before} (before the promotion)"] = _live(s.baseline, confidence)
    return {
        "worker_id": worker_id,
        "assignment": None if s is None else s.assignment.describe(),
        "stable": None if s is None else s.stable,
        "candidate": None if s is None else s.candidate,
        "share": 0.0 if s is None else s.share,
        "pinned": False if s is None else s.pinned,
        "phase": None if s is None else s.phase,
        "phase_since_ms": None if s is None else s.started_ms,
        "live": live,
        "rolled_back": [] if s is None else s.rolled_back,
        "versions": [
            {**{k: row[k] for k in _SHOWN}, "status": _status(row["version"], s)}
            for row in (v.summary() for v in versions)
        ],
        "decisions": await fetch_decisions(db, worker_id, scope=scope, limit=20),
    }


async def send_command(
    db: Executor,
    producer: AIOKafkaProducer,
    topics: Topics,
    worker_id: str,
    command: str,
    version: int | None,
    *,
    requested_by: str,
    reason: str | None = None,
    wait_s: float = 10.0,
) -> dict[str, Any]:
    """Check, send, and wait up to ``wait_s`` for the rollout service's answer."""
    check_id(worker_id, "worker_id")
    if reason is not None and not isinstance(reason, str):
        raise CommandError("reason must be a string")
    if command not in COMMANDS:
        raise CommandError(f"command must be one of {COMMANDS}, got {command!r}")
    if version is not None and (type(version) is not int or version < 1):
        raise CommandError(f"version must be a positive integer, got {version!r}")
    view = await rollout_view(db, worker_id)
    known = [v["version"] for v in view["versions"]]
    if version is not None and version not in known:
        raise CommandError(f"{worker_id} has no version {version} (published: {known or 'none'})")
    if command == "promote" and version is None and view["candidate"] is None:
        raise CommandError(f"{worker_id} has no candidate on canary: name the version")
    if command == "unpin" and not view["pinned"]:
        raise CommandError(f"{worker_id} is not pinned")
    event = command_event(worker_id, command, version, requested_by, reason, now_ms())
    await publish(producer, topics.rollout_commands, worker_id, event)
    answer = await _answer(db, event.command_id, wait_s)
    return {"command": event.to_record(), "answer": answer}


async def _answer(db: Executor, command_id: str, wait_s: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + wait_s
    while True:
        rows = await db.fetch(
            """SELECT decision, reason, stable_version, candidate_version, candidate_share,
                      pinned, sequence, decided_at
               FROM rollout_decisions WHERE command_id = $1 ORDER BY sequence""",
            command_id,
        )
        if rows:
            return {
                "status": "applied",
                "decisions": [{**dict(r), "decided_at": r["decided_at"].isoformat()} for r in rows],
            }
        refused = await db.fetchval(
            """SELECT details->>'refused' FROM audit_log
               WHERE action = 'rollout.command_refused' AND details->>'command_id' = $1""",
            command_id,
        )
        if refused is not None:
            return {"status": "refused", "reason": refused}
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.1)


async def read_policy(kafka: KafkaSettings, topics: Topics, worker_id: str) -> RolloutPolicy:
    """The worker's canary settings (the defaults when it has none)."""
    check_id(worker_id, "worker_id")
    found = (await read_compacted(kafka, topics.rollout_config, parse_policy_record)).get(worker_id)
    return found or RolloutPolicy(worker_id=worker_id)


async def update_policy(
    kafka: KafkaSettings,
    topics: Topics,
    worker_id: str,
    changes: Mapping[str, Any],
    updated_by: str,
) -> RolloutPolicy:
    """The worker's canary settings with ``changes`` applied (live: the service follows the
    topic); as they are when there are none."""
    policy = await read_policy(kafka, topics, worker_id)
    if changes:
        policy = policy.merged(changes, updated_by)
        await write_policy(kafka, topics.rollout_config, policy, worker_id)
    return policy


async def write_policy(
    kafka: KafkaSettings, topic: str, policy: RolloutPolicy | None, worker_id: str
) -> None:
    """Publish ``policy`` for ``worker_id`` on the compacted ``rollout-config`` topic (None: a
    tombstone, back to the defaults)."""
    await write_compacted(kafka, topic, worker_id, policy)
