"""A worker's canary settings, as read from (and written to) the compacted ``rollout-config``
topic (``RolloutConfig`` events, key = worker id; a tombstone restores the defaults).

Defaults: 10 % of the traffic on the candidate, 95 % confidence, a 2-point non-inferiority
margin, 50 labeled calls on each version before any decision, and the current version kept
after 20,000 labeled calls or 7 days without one (see ``sequential.py`` for why). The test is
tuned to find a 5-point difference fastest (``effect_size``, the mixture scale tau); where
gains of tens of points are expected (the demo) a larger one decides in fewer labels, with
the same error guarantee.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dspy_flywheel.bus.guard import Record
from dspy_flywheel.contracts.codec import decode
from dspy_flywheel.contracts.events import RolloutConfig, field_names, now_ms
from dspy_flywheel.contracts.validate import check_id
from dspy_flywheel.rollout.sequential import SequentialConfig


class RolloutConfigError(ValueError):
    """A rollout setting is out of range (``retriable`` False: the same value fails again)."""

    retriable = False


# the settings an operator changes (CLI, HTTP API): every field but the stamp
SETTINGS = tuple(
    n for n in field_names(RolloutConfig) if n not in ("worker_id", "updated_by", "timestamp_ms")
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutPolicy(RolloutConfig):
    """A ``RolloutConfig`` event, validated, stamped now when written by hand."""

    timestamp_ms: int = field(default_factory=now_ms)

    def __post_init__(self) -> None:
        if not 0.0 < self.share < 1.0:
            raise RolloutConfigError(f"share must be in (0, 1), got {self.share}")
        if not 0.5 < self.confidence < 1.0:
            raise RolloutConfigError(f"confidence must be in (0.5, 1), got {self.confidence}")
        if not 0.0 < self.effect_size <= 1.0:
            raise RolloutConfigError(f"effect_size must be in (0, 1], got {self.effect_size}")
        try:
            self.sequential()
        except ValueError as exc:
            raise RolloutConfigError(str(exc)) from exc

    def sequential(self) -> SequentialConfig:
        """The live test's settings."""
        return SequentialConfig(
            alpha=1.0 - self.confidence,
            margin=self.margin,
            tau=self.effect_size,
            min_samples=self.min_samples,
            max_samples=self.max_samples,
            max_duration_s=float(self.max_duration_s),
        )

    @classmethod
    def of(cls, event: RolloutConfig) -> RolloutPolicy:
        """``event`` validated (RolloutConfigError when it is out of range)."""
        return event if isinstance(event, cls) else cls.from_record(event.to_record())

    def merged(self, changes: Mapping[str, Any], updated_by: str) -> RolloutPolicy:
        """A copy with ``changes`` applied and stamped; unknown names are refused."""
        unknown = set(changes) - set(SETTINGS)
        if unknown:
            raise RolloutConfigError(
                f"unknown rollout settings: {sorted(unknown)} (known: {sorted(SETTINGS)})"
            )
        return replace(self, **changes, updated_by=updated_by, timestamp_ms=now_ms())


def parse_policy_record(record: Record) -> tuple[str, RolloutPolicy | None]:
    """A ``rollout-config`` record: (worker id, policy or None for a tombstone); ValueError for
    anything else."""
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
