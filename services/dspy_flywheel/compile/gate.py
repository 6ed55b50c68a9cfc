"""Ship-if-better: publish a candidate only when it beats the current program on the holdout."""

from __future__ import annotations

from dataclasses import dataclass

_EPSILON = 1e-9  # scores are means of 0/1 metrics; ignore float noise


@dataclass(frozen=True)
class Decision:
    publish: bool
    current: float
    candidate: float
    margin: float

    @property
    def reason(self) -> str:
        verdict = "better" if self.publish else "not better"
        return (
            f"candidate {self.candidate:.3f} vs current {self.current:.3f} on the holdout: "
            f"{verdict} by more than the margin {self.margin:.3f}"
        )


def decide(current: float, candidate: float, margin: float) -> Decision:
    """Publish iff ``candidate > current + margin`` (strictly; a tie is not an improvement)."""
    return Decision(candidate - current > margin + _EPSILON, current, candidate, margin)
