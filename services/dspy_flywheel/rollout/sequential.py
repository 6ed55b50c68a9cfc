"""The live test: a candidate against the current program on live traffic, checked after every
label, valid however often it is checked. Pure statistics, no IO.

Each arm is a count of labeled calls and of correct ones. The difference in accuracy
``d = p_candidate - p_current`` gets an **always-valid confidence sequence**: Robbins' normal
mixture (the mSPRT of Johari et al., "Always valid inference", 2017/2022) on the two-sample
difference of means, with the plug-in Bernoulli variance

    V = p~_cur (1 - p~_cur) / n_cur + p~_cand (1 - p~_cand) / n_cand,   p~ = (k + 1/2) / (n + 1)

    |d_hat - d| <= sqrt( V (V + tau^2) / tau^2 * (2 ln(1/alpha) + ln((V + tau^2) / V)) )

for every n at once with probability >= 1 - alpha (asymptotically: the variance is estimated,
which is why no decision is taken before ``min_samples`` labels on each arm; the simulation in
``tests/bench/rollout_sim.py`` measures the real error rates). ``tau`` is the scale of the
differences the mixture is tuned to find fastest.

Decisions (``decide_canary``), checked in this order:

- **rollback** when the whole interval is below 0: the candidate is worse than the current one;
- **promote** when the whole interval is above ``-margin``: the candidate is *not worse by more
  than the non-inferiority margin* (it already passed the offline gate, which showed it better;
  live traffic must show it is not harmful). A candidate 2 points better and one 1 point worse
  are both fine to ship at the default 2-point margin; one 5 points worse is promoted with
  probability <= alpha;
- **keep current** when ``max_samples`` labels or ``max_duration_s`` pass without either;
- else keep watching.

With one interval at level alpha: P(rollback | equal arms) <= alpha and
P(promote | d <= -margin) <= alpha.

The guard after promotion (``decide_guard``) uses the same interval with the predecessor's live
counts from its last canary as the fixed "current" arm and the promoted version's counts since
promotion as the growing arm: it rolls back when the interval is below ``-margin`` (a drop beyond
what the promotion accepted).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from dspy_flywheel.rollout.paired import pts

Outcome = Literal["promote", "rollback", "keep_current", "continue"]
Floats = npt.NDArray[np.float64]
Codes = npt.NDArray[np.int8]
CONTINUE: Final = 0  # codes of the vectorized rules (the simulation runs them on arrays)
PROMOTE: Final = 1
ROLLBACK: Final = 2


@dataclass(frozen=True)
class Arm:
    """Labeled live calls of one version and how many were correct."""

    labels: int = 0
    correct: int = 0

    def __post_init__(self) -> None:
        if self.labels < 0 or not 0 <= self.correct <= self.labels:
            raise ValueError(f"inconsistent arm counts: {self.correct} correct of {self.labels}")

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labels if self.labels else None

    def add(self, correct: bool) -> Arm:
        return Arm(self.labels + 1, self.correct + int(correct))


@dataclass(frozen=True)
class SequentialConfig:
    alpha: float = 0.05
    margin: float = 0.02  # non-inferiority margin, in accuracy (0.02 = 2 points)
    min_samples: int = 50  # labels on each arm before any decision
    max_samples: int = 20_000  # labels on both arms together; then keep the current version
    max_duration_s: float = 7 * 86_400.0  # then keep the current version
    tau: float = 0.05  # mixture scale: the size of difference found fastest

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {self.alpha}")
        if not 0.0 <= self.margin < 1.0:
            raise ValueError(f"margin must be in [0, 1), got {self.margin}")
        if self.min_samples < 1 or self.max_samples < 2 * self.min_samples:
            raise ValueError("min_samples >= 1 and max_samples >= 2 * min_samples")
        if self.max_duration_s <= 0 or self.tau <= 0:
            raise ValueError("max_duration_s and tau must be > 0")


def _radius(variance: Floats | np.float64, alpha: float, tau: float) -> Floats:
    """Half-width of the normal-mixture confidence sequence at an estimator variance."""
    t2 = tau * tau
    radius: Floats = np.sqrt(
        variance * (variance + t2) / t2 * (2.0 * np.log(1.0 / alpha) + np.log1p(t2 / variance))
    )
    return radius


def intervals(
    cur_n: npt.ArrayLike,
    cur_k: npt.ArrayLike,
    cand_n: npt.ArrayLike,
    cand_k: npt.ArrayLike,
    alpha: float,
    tau: float,
) -> tuple[Floats, Floats, Floats]:
    """(estimate, lower, upper) of ``p_candidate - p_current``, always valid at ``alpha``;
    element-wise over arrays of counts. An empty arm gives the whole range [-1, 1]."""
    n0, k0 = np.asarray(cur_n, np.float64), np.asarray(cur_k, np.float64)
    n1, k1 = np.asarray(cand_n, np.float64), np.asarray(cand_k, np.float64)
    empty = (n0 == 0) | (n1 == 0)
    n0, n1 = np.maximum(n0, 1.0), np.maximum(n1, 1.0)
    p0, p1 = (k0 + 0.5) / (n0 + 1.0), (k1 + 0.5) / (n1 + 1.0)
    radius = _radius(p0 * (1.0 - p0) / n0 + p1 * (1.0 - p1) / n1, alpha, tau)
    estimate = np.where(empty, 0.0, k1 / n1 - k0 / n0)
    lower = np.where(empty, -1.0, np.maximum(-1.0, estimate - radius))
    upper = np.where(empty, 1.0, np.minimum(1.0, estimate + radius))
    return estimate, lower, upper


def accuracy_interval(arm: Arm, alpha: float, tau: float) -> tuple[float, float] | None:
    """Always-valid interval of one version's live accuracy (same mixture, one arm); None
    without labels. For display: the decisions use the interval of the difference."""
    if arm.labels == 0:
        return None
    p = (arm.correct + 0.5) / (arm.labels + 1.0)
    r = float(_radius(np.float64(p * (1.0 - p) / arm.labels), alpha, tau))
    accuracy = arm.correct / arm.labels
    return (max(0.0, accuracy - r), min(1.0, accuracy + r))


def canary_codes(
    cur_n: npt.ArrayLike,
    cur_k: npt.ArrayLike,
    cand_n: npt.ArrayLike,
    cand_k: npt.ArrayLike,
    config: SequentialConfig,
) -> Codes:
    """ROLLBACK where the interval is below 0, else PROMOTE where it is above ``-margin``,
    else CONTINUE; CONTINUE while either arm has fewer than ``min_samples`` labels."""
    _, lower, upper = intervals(cur_n, cur_k, cand_n, cand_k, config.alpha, config.tau)
    ready = np.minimum(np.asarray(cur_n), np.asarray(cand_n)) >= config.min_samples
    codes = np.where(upper < 0.0, ROLLBACK, np.where(lower > -config.margin, PROMOTE, CONTINUE))
    return np.where(ready, codes, CONTINUE).astype(np.int8)


def guard_codes(
    base_n: npt.ArrayLike,
    base_k: npt.ArrayLike,
    new_n: npt.ArrayLike,
    new_k: npt.ArrayLike,
    config: SequentialConfig,
) -> Codes:
    """ROLLBACK where the promoted version (``new``, counted since the promotion) is below its
    predecessor's live accuracy (``base``) by more than the margin; CONTINUE otherwise."""
    _, _, upper = intervals(base_n, base_k, new_n, new_k, config.alpha, config.tau)
    ready = (np.asarray(new_n) >= config.min_samples) & (np.asarray(base_n) > 0)
    return np.where(ready & (upper < -config.margin), ROLLBACK, CONTINUE).astype(np.int8)


@dataclass(frozen=True)
class LiveDecision:
    outcome: Outcome
    reason: str
    current: Arm
    candidate: Arm
    estimate: float
    interval: tuple[float, float]
    alpha: float
    margin: float

    def record(self) -> dict[str, Any]:
        """JSON-ready evidence for events, audit rows and the API."""
        return {**asdict(self), "interval": list(self.interval)}


def _decision(
    outcome: Outcome, why: str, current: Arm, candidate: Arm, config: SequentialConfig
) -> LiveDecision:
    counts = (current.labels, current.correct, candidate.labels, candidate.correct)
    est, lo, hi = (float(x) for x in intervals(*counts, config.alpha, config.tau))
    evidence = (
        f"{candidate.correct}/{candidate.labels} vs {current.correct}/{current.labels} correct: "
        f"difference {pts(est)}, always-valid {1 - config.alpha:.0%} interval "
        f"[{pts(lo)}, {pts(hi)}]"
    )
    reason = f"{why}: {evidence}"
    return LiveDecision(
        outcome, reason, current, candidate, est, (lo, hi), config.alpha, config.margin
    )


def decide_canary(
    current: Arm, candidate: Arm, config: SequentialConfig, elapsed_s: float
) -> LiveDecision:
    """Promote, roll back, keep the current version (time or samples ran out), or continue."""
    code = int(
        canary_codes(current.labels, current.correct, candidate.labels, candidate.correct, config)
    )
    total = current.labels + candidate.labels
    if code == ROLLBACK:
        why = "the candidate is worse than the current version"
        return _decision("rollback", why, current, candidate, config)
    if code == PROMOTE:
        why = (
            "the candidate is not worse than the current version by more than the margin "
            f"({100 * config.margin:.1f} pts)"
        )
        return _decision("promote", why, current, candidate, config)
    if total >= config.max_samples:
        why = f"no decision after {total} labeled calls (max {config.max_samples})"
        return _decision("keep_current", why, current, candidate, config)
    if elapsed_s >= config.max_duration_s:
        why = f"no decision after {elapsed_s:.0f} s (max {config.max_duration_s:.0f} s)"
        return _decision("keep_current", why, current, candidate, config)
    if min(current.labels, candidate.labels) < config.min_samples:
        why = f"waiting for {config.min_samples} labeled calls on each version"
    else:
        why = "not enough evidence yet"
    return _decision("continue", why, current, candidate, config)


def decide_guard(baseline: Arm, serving: Arm, config: SequentialConfig) -> LiveDecision:
    """After a promotion: roll back when the serving version fell below its predecessor's live
    accuracy (``baseline``) by more than the margin; else continue (it never ends by itself)."""
    code = int(
        guard_codes(baseline.labels, baseline.correct, serving.labels, serving.correct, config)
    )
    if code == ROLLBACK:
        why = (
            "the promoted version dropped below its predecessor's live accuracy by more than "
            f"the margin ({100 * config.margin:.1f} pts)"
        )
        return _decision("rollback", why, baseline, serving, config)
    if serving.labels < config.min_samples:
        why = f"waiting for {config.min_samples} labeled calls since the promotion"
    else:
        why = "no significant drop"
    return _decision("continue", why, baseline, serving, config)
