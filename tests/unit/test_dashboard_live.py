"""Live accuracy buckets: no point mixes two versions; each change is a marker."""

from __future__ import annotations

from dspy_flywheel.dashboard.charts import live_chart
from dspy_flywheel.dashboard.live import bucket


def _rows(version: int, scores: list[float], start: int) -> list[tuple[int, float, str]]:
    return [(version, s, f"2026-01-01T00:{start + i:02d}:00+00:00") for i, s in enumerate(scores)]


def test_buckets_split_at_version_changes() -> None:
    rows = _rows(0, [0.0] * 12, 0) + _rows(3, [1.0, 1.0, 0.0], 12)
    series = bucket(rows, size=10)
    assert [(p.version, p.accuracy, p.calls) for p in series.points] == [
        (0, 0.0, 10),
        (0, 0.0, 2),
        (3, 2 / 3, 3),
    ]
    assert [(c.version, c.at) for c in series.changes] == [(3, "2026-01-01T00:12:00+00:00")]


def test_chart_draws_a_point_per_bucket_and_a_marker_per_change() -> None:
    live = bucket(_rows(0, [0.0] * 20, 0) + _rows(1, [1.0] * 10, 20), size=10).as_dict()
    svg = live_chart(live)
    assert svg.count("data-field='live-point'") == 3
    assert svg.count("data-field='version-marker' data-version='1'") == 1
    assert "no scored calls yet" in live_chart({"points": [], "changes": []})
