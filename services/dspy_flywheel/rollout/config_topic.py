"""The compacted ``rollout-config`` topic: key = worker id, value = RolloutConfig, null = the
defaults again. Read by the rollout service (live) and by ``flywheel programs config``."""

from __future__ import annotations

from dspy_flywheel.bus.compacted import read_compacted, write_compacted
from dspy_flywheel.bus.guard import Record
from dspy_flywheel.contracts.codec import decode
from dspy_flywheel.contracts.events import RolloutConfig
from dspy_flywheel.contracts.validate import check_id
from dspy_flywheel.rollout.config import RolloutConfigError, RolloutPolicy
from dspy_flywheel.settings import KafkaSettings


def parse_policy_record(record: Record) -> tuple[str, RolloutPolicy | None]:
    """(worker id, policy or None for a tombstone); ValueError for anything else."""
    if record.key is None:
        raise RolloutConfigError("rollout config without a key")
    worker_id = check_id(record.key.decode(), "key")
    if record.value is None:
        return worker_id, None
    event = decode(record.value, record.headers).event
    if not isinstance(event, RolloutConfig):
        raise RolloutConfigError(f"unexpected {event.event_type} on the rollout-config topic")
    policy = RolloutPolicy.of(event)
    if policy.worker_id != worker_id:
        raise RolloutConfigError(f"key {worker_id!r} differs from worker_id {policy.worker_id!r}")
    return worker_id, policy


async def read_policies(kafka: KafkaSettings, topic: str) -> dict[str, RolloutPolicy]:
    return await read_compacted(kafka, topic, parse_policy_record)


async def write_policy(
    kafka: KafkaSettings, topic: str, policy: RolloutPolicy | None, worker_id: str
) -> None:
    """Publish ``policy`` for ``worker_id`` (None: a tombstone, back to the defaults)."""
    await write_compacted(kafka, topic, worker_id, policy)
