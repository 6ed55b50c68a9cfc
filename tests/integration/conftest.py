"""Fixtures shared by integration test modules (the session-wide ones are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures import rollout_lm


@pytest.fixture
def accuracy() -> Iterator[dict[str, object]]:
    """The rollout fake LM's accuracy per version tag, restored after the test."""
    saved = dict(rollout_lm.ACCURACY)
    yield rollout_lm.ACCURACY
    rollout_lm.ACCURACY.clear()
    rollout_lm.ACCURACY.update(saved)
