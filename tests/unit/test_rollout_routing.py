"""Routing by key: deterministic, at the configured share, a new draw per candidate."""

from __future__ import annotations

import pytest

from dspy_flywheel.rollout.routing import Split


def test_same_key_same_version_everywhere() -> None:
    a, b = Split("router", 3, 0.1), Split("router", 3, 0.1)
    keys = [f"user-{i}" for i in range(2000)]
    assert [a.to_candidate(k) for k in keys] == [b.to_candidate(k) for k in keys]


def test_share_is_respected() -> None:
    split = Split("router", 3, 0.1)
    n = 100_000
    share = sum(split.to_candidate(f"exec-{i}") for i in range(n)) / n
    assert share == pytest.approx(0.1, abs=0.005)


def test_each_candidate_draws_its_own_keys() -> None:
    keys = [f"user-{i}" for i in range(5000)]
    first = {k for k in keys if Split("router", 3, 0.1).to_candidate(k)}
    second = {k for k in keys if Split("router", 4, 0.1).to_candidate(k)}
    assert len(first & second) < 0.2 * len(first)  # about 10 % overlap by chance


def test_shares_nest() -> None:
    """Raising the share keeps every key that was on the candidate there."""
    keys = [f"k{i}" for i in range(3000)]
    low = {k for k in keys if Split("w", 1, 0.1).to_candidate(k)}
    high = {k for k in keys if Split("w", 1, 0.3).to_candidate(k)}
    assert low <= high


def test_bad_share_is_refused() -> None:
    with pytest.raises(ValueError, match="share"):
        Split("w", 1, 1.2)
