"""A worker's canary settings, as read from (and written to) the compacted ``rollout-config``
topic (``RolloutConfig`` events, key = worker id; a tombstone restores the defaults).

Defaults: 10 % of the traffic on the candidate, 95 % confidence, a 2-point non-inferiority
margin, 50 labeled calls on each version before any decision, and the current version kept
after 20,000 labeled calls or 7 days without one (see ``sequential.py`` for why).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from dspy_flywheel.rollout.sequential import SequentialConfig


class RolloutConfigError(ValueError):
    """A rollout setting is out of range (``retriable`` False: the same value fails again)."""

    retriable = False


@dataclass(frozen=True)
class RolloutPolicy:
    worker_id: str
    enabled: bool = True
    share: float = 0.1
    confidence: float = 0.95
    margin: float = 0.02
    min_samples: int = 50
    max_samples: int = 20_000
    max_duration_s: int = 7 * 86_400
    updated_by: str = "system"
    timestamp_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    def __post_init__(self) -> None:
        if not 0.0 < self.share < 1.0:
            raise RolloutConfigError(f"share must be in (0, 1), got {self.share}")
        if not 0.5 < self.confidence < 1.0:
            raise RolloutConfigError(f"confidence must be in (0.5, 1), got {self.confidence}")
        try:
            self.sequential()
        except ValueError as exc:
            raise RolloutConfigError(str(exc)) from exc

    def sequential(self) -> SequentialConfig:
        """The live test's settings (``tau`` stays at its default)."""
        return SequentialConfig(
            alpha=1.0 - self.confidence,
            margin=self.margin,
            min_samples=self.min_samples,
            max_samples=self.max_samples,
            max_duration_s=float(self.max_duration_s),
        )

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RolloutPolicy:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    def merged(self, changes: Mapping[str, Any], updated_by: str) -> RolloutPolicy:
        """A copy with ``changes`` applied and stamped; unknown names are refused."""
        known = {f.name for f in fields(self)} - {"worker_id", "updated_by", "timestamp_ms"}
        unknown = set(changes) - known
        if unknown:
            raise RolloutConfigError(
                f"unknown rollout settings: {sorted(unknown)} (known: {sorted(known)})"
            )
        return replace(self, **changes, updated_by=updated_by, timestamp_ms=int(time.time() * 1000))
