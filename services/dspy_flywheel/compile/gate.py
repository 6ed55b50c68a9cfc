"""Ship if proven: a job's holdout gate on the per-example results of both programs.

The statistics (exact test on the discordant pairs, score interval, minimum holdout) live in
``dspy_flywheel.rollout.paired``; this module only feeds them a job's results and settings.
"""

from __future__ import annotations

from collections.abc import Sequence

from dspy_flywheel.compile.judge import score_correct
from dspy_flywheel.rollout.paired import GateConfig, GateDecision, PairedCounts, decide, too_small

__all__ = ["GateConfig", "GateDecision", "decide_holdout", "too_small"]


def decide_holdout(
    current_scores: Sequence[float], candidate_scores: Sequence[float], config: GateConfig
) -> GateDecision:
    """Publish iff the candidate is better by more than the margin on the same examples (a
    per-example metric score counts as correct as the judge says: from 0.5)."""
    counts = PairedCounts.from_outcomes(
        [score_correct(s) for s in current_scores], [score_correct(s) for s in candidate_scores]
    )
    return decide(counts, config)
