"""Kafka topic names, in one place, and which consumer owns each topic's dead-letter topic.

``Topics(prefix="t123-")`` gives every name a prefix, so tests get private topics.

Every consumed topic has exactly one DLQ owner (``DLQ_OWNERS``): other consumers of the topic
skip a bad record (and log it) instead of dead-lettering their own copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# The one event type each topic carries (anything else on it is a bad record).
CARRIES: Final[dict[str, str]] = {
    "executions": "ExecutionRecorded",
    "feedback": "FeedbackRecorded",
    "optimization-requests": "OptimizationRequested",
    "optimization-status": "OptimizationStatusChanged",
    "program-updated": "ProgramUpdated",
    "program-acks": "ProgramAcknowledged",
    "trigger-config": "TriggerConfig",
    "alerts": "Alert",
    "program-rollouts": "RolloutChanged",
    "rollout-config": "RolloutConfig",
    "rollout-commands": "RolloutCommand",
}
DLQ_OWNERS: Final[dict[str, str]] = {
    "executions": "collector",  # the trigger reads them too
    "feedback": "collector",
    "optimization-requests": "optimizer",  # the trigger reads them too
    "program-acks": "optimizer",
    "program-updated": "optimizer",  # every worker reads it; the optimizer checks it
    "optimization-status": "trigger",
    "trigger-config": "trigger",  # workers, the manager and the CLI read it too
    "program-rollouts": "rollout",  # every worker reads it; the rollout service checks it
    "rollout-config": "rollout",
    "rollout-commands": "rollout",
}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False


class _Name:
    """A topic of the platform: its base name after the ``Topics``' prefix."""

    def __init__(self, base: str) -> None:
        self.base = base

    def __get__(self, topics: Topics, owner: type[Topics]) -> str:
        return f"{topics.prefix}{self.base}"


@dataclass(frozen=True)
class Topics:
    prefix: str = ""
    partitions: int = 3

    executions = _Name("executions")
    feedback = _Name("feedback")
    optimization_requests = _Name("optimization-requests")
    optimization_status = _Name("optimization-status")
    program_updated = _Name("program-updated")
    program_acks = _Name("program-acks")
    trigger_config = _Name("trigger-config")
    alerts = _Name("alerts")
    program_rollouts = _Name("program-rollouts")  # each worker's assignment (compacted)
    rollout_config = _Name("rollout-config")
    rollout_commands = _Name("rollout-commands")

    @staticmethod
    def dlq(topic: str) -> str:
        """The dead-letter topic of ``topic`` (``topic`` itself when it is one)."""
        return topic if topic.endswith(".dlq") else f"{topic}.dlq"

    def event_type_of(self, topic: str) -> str | None:
        """The event type ``topic`` carries (None: not one of ours)."""
        base = topic[len(self.prefix) :] if topic.startswith(self.prefix) else None
        return CARRIES.get(base) if base is not None else None

    def dlq_owned_by(self, consumer: str) -> frozenset[str]:
        """The topics whose bad records ``consumer`` dead-letters."""
        return frozenset(
            f"{self.prefix}{t}" for t, owner in DLQ_OWNERS.items() if owner == consumer
        )

    def specs(self) -> list[TopicSpec]:
        """Every topic the platform uses, with partitions and cleanup policy."""
        n = self.partitions
        return [
            TopicSpec(self.executions, n),
            TopicSpec(self.feedback, n),
            *(TopicSpec(self.dlq(f"{self.prefix}{t}"), 1) for t in DLQ_OWNERS),
            TopicSpec(self.optimization_requests, n),
            TopicSpec(self.optimization_status, n),
            TopicSpec(self.program_updated, 1),
            TopicSpec(self.program_acks, 1),
            TopicSpec(self.trigger_config, 1, compacted=True),
            TopicSpec(self.alerts, 1),
            TopicSpec(self.program_rollouts, 1, compacted=True),
            TopicSpec(self.rollout_config, 1, compacted=True),
            TopicSpec(self.rollout_commands, 1),
        ]
