"""The live test: always-valid interval on the accuracy difference and its decisions."""

from __future__ import annotations

import numpy as np
import pytest

from dspy_flywheel.rollout.sequential import (
    PROMOTE,
    ROLLBACK,
    Arm,
    SequentialConfig,
    canary_codes,
    decide_canary,
    decide_guard,
    intervals,
)

FAST = SequentialConfig(min_samples=20, max_samples=5000)


def _first_decisions(
    p_current: float, p_candidate: float, runs: int, steps: int, config: SequentialConfig
) -> np.ndarray:
    """The first non-continue code of each simulated canary checked after every label."""
    rng = np.random.default_rng(11)
    to_candidate = rng.random((runs, steps)) < 0.5
    correct = rng.random((runs, steps)) < np.where(to_candidate, p_candidate, p_current)
    n1 = np.cumsum(to_candidate, axis=1)
    k1 = np.cumsum(to_candidate & correct, axis=1)
    n0 = np.cumsum(~to_candidate, axis=1)
    k0 = np.cumsum(~to_candidate & correct, axis=1)
    codes = canary_codes(n0, k0, n1, k1, config)
    decided = codes != 0
    first = decided.argmax(axis=1)
    return np.where(decided.any(axis=1), codes[np.arange(runs), first], 0)


def test_clearly_better_candidate_is_promoted() -> None:
    decision = decide_canary(Arm(450, 270), Arm(50, 45), FAST, elapsed_s=60)
    assert decision.outcome == "promote"
    assert decision.interval[0] > -FAST.margin
    assert "45/50 vs 270/450" in decision.reason


def test_clearly_worse_candidate_is_rolled_back() -> None:
    decision = decide_canary(Arm(450, 400), Arm(50, 20), FAST, elapsed_s=60)
    assert decision.outcome == "rollback"
    assert decision.interval[1] < 0
    assert decision.record()["candidate"] == {"labels": 50, "correct": 20}


def test_no_decision_before_min_samples_on_each_arm() -> None:
    decision = decide_canary(Arm(900, 900), Arm(19, 0), FAST, elapsed_s=60)
    assert decision.outcome == "continue"
    assert "waiting for 20" in decision.reason


def test_keep_current_when_samples_or_time_run_out() -> None:
    equal = (Arm(2250, 1575), Arm(2750, 1925))  # 70 % each, 5000 labels
    assert decide_canary(*equal, FAST, elapsed_s=1).outcome == "keep_current"
    config = SequentialConfig(min_samples=20, max_duration_s=3600)
    early = decide_canary(Arm(300, 210), Arm(40, 28), config, elapsed_s=3600)
    assert early.outcome == "keep_current"
    assert "no decision after 3600 s" in early.reason


def test_interval_shrinks_and_covers_the_estimate() -> None:
    est, lo, hi = intervals(
        [100, 1000, 10000], [70, 700, 7000], [100, 1000, 10000], [75, 750, 7500], 0.05, 0.05
    )
    assert np.all(lo <= est)
    assert np.all(est <= hi)
    widths = hi - lo
    assert widths[0] > widths[1] > widths[2]
    _, lo0, hi0 = intervals(0, 0, 10, 5, 0.05, 0.05)
    assert (float(lo0), float(hi0)) == (-1.0, 1.0)


def test_guard_rolls_back_a_drop_and_tolerates_noise() -> None:
    baseline = Arm(900, 810)  # the predecessor served 90 % before the promotion
    drop = decide_guard(baseline, Arm(200, 120), FAST)  # 60 % since the promotion
    assert drop.outcome == "rollback"
    assert "dropped below its predecessor" in drop.reason
    same = decide_guard(baseline, Arm(200, 178), FAST)
    assert same.outcome == "continue"
    assert decide_guard(baseline, Arm(10, 0), FAST).outcome == "continue"  # too few yet


def test_checking_after_every_label_keeps_errors_within_alpha() -> None:
    """500 equal-arm canaries checked 3000 times each: rollbacks stay under alpha, while a
    fixed-sample 95 % z-test peeked at as often rejects far more often."""
    config = SequentialConfig(min_samples=20, max_samples=100_000)
    first = _first_decisions(0.7, 0.7, runs=500, steps=3000, config=config)
    assert (first == ROLLBACK).mean() <= config.alpha
    rng = np.random.default_rng(3)
    naive = 0
    for _ in range(200):
        x = rng.random((2, 3000)) < 0.7
        n = np.arange(1, 3001)
        diff = np.cumsum(x[1]) / n - np.cumsum(x[0]) / n
        se = np.sqrt(2 * 0.21 / n)
        naive += bool(np.any((diff / se)[20:] < -1.96))
    assert naive / 200 > 2 * config.alpha


def test_worse_candidate_beyond_margin_is_rarely_promoted() -> None:
    config = SequentialConfig(margin=0.02, min_samples=20, max_samples=100_000)
    first = _first_decisions(0.7, 0.65, runs=300, steps=3000, config=config)
    assert (first == PROMOTE).mean() <= config.alpha


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        SequentialConfig(alpha=0.0)
    with pytest.raises(ValueError, match="min_samples"):
        SequentialConfig(min_samples=100, max_samples=150)
    with pytest.raises(ValueError, match="inconsistent"):
        Arm(3, 4)
