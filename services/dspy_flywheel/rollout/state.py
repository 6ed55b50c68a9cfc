"""Per-worker rollout state: which versions serve, the live counts the tests read, the memory
that stops ping-pong. Serializes to JSON (``to_json`` / ``from_json``) for ``rollout_state``."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from dspy_flywheel.rollout.sequential import Arm

Phase = Literal["idle", "canary", "guard"]
_KEPT_DECISIONS = 20


@dataclass(frozen=True)
class Assignment:
    """What every instance of the worker serves (a ``RolloutChanged`` event's core)."""

    stable: int | None  # None: the code's own program
    candidate: int | None = None
    share: float = 0.0
    pinned: bool = False

    def describe(self) -> str:
        def name(v: int | None) -> str:
            return "code" if v is None else f"v{v}"

        text = name(self.stable)
        if self.candidate is not None:
            text = (
                f"{text} at {1 - self.share:.0%}, candidate v{self.candidate} at {self.share:.0%}"
            )
        return text + (" (pinned)" if self.pinned else "")


def _arm(data: Any) -> Arm:
    labels, correct = data
    return Arm(int(labels), int(correct))


@dataclass
class WorkerRollout:
    worker_id: str
    sequence: int = 0  # of the last assignment published
    stable: int | None = None
    candidate: int | None = None
    share: float = 0.0
    pinned: bool = False
    phase: Phase = "idle"
    started_ms: int | None = None  # when the current phase began
    stable_arm: Arm = field(default_factory=Arm)  # the stable version since the phase began
    candidate_arm: Arm = field(default_factory=Arm)
    baseline: Arm = field(default_factory=Arm)  # guard: the predecessor's canary record
    previous: int | None = None  # guard: the version a guard rollback returns to
    rolled_back: list[int] = field(default_factory=list)  # never re-promoted automatically
    retired: list[int] = field(default_factory=list)  # kept out or superseded: never re-tried
    known: list[int] = field(default_factory=list)  # versions published for this worker
    waiting: int | None = None  # a candidate published while pinned
    traceparent: str | None = None  # the candidate's (or promoted version's) lifecycle
    job_id: str | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)  # newest last

    @property
    def assignment(self) -> Assignment:
        return Assignment(self.stable, self.candidate, self.share, self.pinned)

    def begin(self, phase: Phase, at_ms: int) -> None:
        """A new phase: the live counts start over (arms compare the same period)."""
        self.phase = phase
        self.started_ms = at_ms
        self.stable_arm = Arm()
        self.candidate_arm = Arm()

    def remember(self, decision: dict[str, Any]) -> None:
        self.decisions = [*self.decisions[-(_KEPT_DECISIONS - 1) :], decision]

    def to_json(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: [v.labels, v.correct] if isinstance(v, Arm) else v for k, v in values.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerRollout:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        for name in ("stable_arm", "candidate_arm", "baseline"):
            if name in values:
                values[name] = _arm(values[name])
        return cls(**values)
