"""The offline ship gate: exact test on discordant pairs + Tango score interval."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from dspy_flywheel.rollout.paired import (
    GateConfig,
    PairedCounts,
    decide,
    score_interval,
    sign_test_p,
    too_small,
)

ANY_SIZE = GateConfig(min_holdout=1)


def _publish_probability(n: int, p_b: float, p_c: float, config: GateConfig) -> float:
    """Exact probability that the gate publishes, over the multinomial of (b, c, rest)."""
    total = 0.0
    for b in range(n + 1):
        for c in range(n - b + 1):
            p = math.comb(n, b) * math.comb(n - b, c) * p_b**b * p_c**c
            p *= (1 - p_b - p_c) ** (n - b - c)
            if p > 1e-12 and decide(PairedCounts(n, 0, b, c), config).publish:
                total += p
    return total


def test_one_better_of_eight_is_not_published_and_says_why() -> None:
    counts = PairedCounts.from_outcomes(
        [True, True, False, False, False, True, True, True],
        [True, True, True, False, False, True, True, True],
    )
    assert (counts.n, counts.b, counts.c) == (8, 1, 0)
    decision = decide(counts)
    assert not decision.publish
    assert "below the minimum of 30" in decision.reason
    assert "needs more labeled data" in decision.reason
    # even with no minimum, one discordant pair is no evidence
    small = decide(counts, ANY_SIZE)
    assert not small.publish
    assert small.p_value == 0.5
    assert small.interval is not None
    assert small.interval[0] < 0 < small.interval[1]
    assert "not better than the current program" in small.reason
    assert "reaches down to it" in small.reason


def test_twenty_points_better_on_a_hundred_is_published_with_interval() -> None:
    current = [True] * 60 + [False] * 40
    candidate = [True] * 55 + [False] * 5 + [True] * 25 + [False] * 15  # 5 lost, 25 won
    counts = PairedCounts.from_outcomes(current, candidate)
    assert (counts.b, counts.c) == (25, 5)
    decision = decide(counts)
    assert decision.publish
    assert decision.gain == pytest.approx(0.20)
    assert decision.interval is not None
    low, high = decision.interval
    assert 0.0 < low < 0.20 < high
    assert decision.p_value is not None
    assert decision.p_value < 0.001
    assert f"[{low * 100:+.1f} pts, {high * 100:+.1f} pts]" in decision.reason
    record = decision.record()
    assert record["n"] == 100
    assert record["b"] == 25
    assert record["c"] == 5
    assert record["interval"] == [low, high]


def test_margin_is_tested_not_just_the_sign() -> None:
    counts = PairedCounts(100, 50, 25, 5)  # +20 pts, interval roughly [+10, +30]
    assert decide(counts, GateConfig(margin=0.05)).publish
    held = decide(counts, GateConfig(margin=0.15))
    assert not held.publish
    assert "margin +15.0 pts" in held.reason


def test_exact_test_guards_small_holdouts() -> None:
    # 3 wins, 0 losses: the score interval alone clears 0, the exact test (p = 1/8) does not
    counts = PairedCounts(10, 5, 3, 0)
    assert score_interval(counts, 0.90)[0] > 0
    decision = decide(counts, GateConfig(confidence=0.90, min_holdout=1))
    assert not decision.publish
    assert "exact test" in decision.reason


def test_sign_test_is_exact() -> None:
    assert sign_test_p(5, 0) == 1 / 32
    assert sign_test_p(3, 1) == 5 / 16
    assert sign_test_p(0, 0) == 1.0
    assert sign_test_p(0, 4) == 1.0


@pytest.mark.parametrize(("b", "c"), [(10, 2), (3, 9), (25, 5), (1, 1), (40, 0)])
def test_interval_at_zero_is_mcnemar(b: int, c: int) -> None:
    """The score interval excludes a gain of 0 exactly when McNemar's z does."""
    counts = PairedCounts(100, 30, b, c)
    low, high = score_interval(counts, 0.95)
    z = (b - c) / math.sqrt(b + c)
    crit = NormalDist().inv_cdf(0.975)
    assert (low > 0) == (z > crit)
    assert (high < 0) == (z < -crit)
    assert low <= counts.gain <= high


def test_min_holdout_default_is_justified_by_power() -> None:
    """The powers quoted in the module docstring; a no-better candidate stays under 2.5 %."""
    config = GateConfig(min_holdout=1)
    assert _publish_probability(30, 0.25, 0.05, config) == pytest.approx(0.40, abs=0.01)
    assert _publish_probability(50, 0.25, 0.05, config) == pytest.approx(0.70, abs=0.01)
    assert _publish_probability(100, 0.25, 0.05, config) == pytest.approx(0.96, abs=0.01)
    for n in (10, 30, 60):
        assert _publish_probability(n, 0.15, 0.15, config) <= 0.025


def test_too_small_is_known_before_any_evaluation() -> None:
    refused = too_small(12)
    assert refused is not None
    assert not refused.publish
    assert refused.reason.endswith("below the minimum of 30; needs more labeled data")
    assert too_small(30) is None


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        PairedCounts.from_outcomes([True], [True, False])
    with pytest.raises(ValueError, match="inconsistent"):
        PairedCounts(3, 2, 2, 0)
    with pytest.raises(ValueError, match="confidence"):
        GateConfig(confidence=1.0)
    with pytest.raises(ValueError, match="min_holdout"):
        GateConfig(min_holdout=0)
