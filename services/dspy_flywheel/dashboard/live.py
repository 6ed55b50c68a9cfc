"""Live accuracy from production traffic: the collector's scored examples over time.

A point is the mean score of ``BUCKET`` consecutive scored calls (by execution time) served by
one program version; a version change starts a new bucket, so no point mixes two versions, and
each change is a marker. Per version: live accuracy over all its scored calls.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

BUCKET = 10  # scored calls per point
MAX_POINTS = 200  # newest points kept per worker

_SCORED = """
SELECT coalesce(program_version, '0') AS version, score, executed_at
FROM (SELECT program_version, score, executed_at FROM training_examples
      WHERE worker_id = $1 AND score IS NOT NULL ORDER BY executed_at DESC LIMIT $2) recent
ORDER BY executed_at"""
_BY_VERSION = """
SELECT coalesce(program_version, '0') AS version, avg(score) AS accuracy, count(*) AS calls
FROM training_examples WHERE worker_id = $1 AND score IS NOT NULL
GROUP BY 1"""


@dataclass(frozen=True)
class Point:
    at: str  # ISO time of the bucket's last call
    version: int
    accuracy: float
    calls: int


@dataclass(frozen=True)
class VersionChange:
    at: str  # ISO time of the first call served by ``version``
    version: int


@dataclass(frozen=True)
class LiveSeries:
    points: list[Point]
    changes: list[VersionChange]
    by_version: dict[int, tuple[float, int]]  # version -> (live accuracy, scored calls)

    def as_dict(self) -> dict[str, Any]:
        return {
            "points": [asdict(p) for p in self.points],
            "changes": [asdict(c) for c in self.changes],
            "by_version": {
                str(v): {"accuracy": a, "calls": n} for v, (a, n) in sorted(self.by_version.items())
            },
        }


def _version(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        return 0


def bucket(rows: list[tuple[int, float, str]], size: int = BUCKET) -> LiveSeries:
    """Points and version changes from (version, score, iso time) rows in time order."""
    points: list[Point] = []
    changes: list[VersionChange] = []
    current: list[float] = []
    version: int | None = None
    last_at = ""
    for row_version, score, at in rows:
        if row_version != version:
            if current and version is not None:
                points.append(Point(last_at, version, sum(current) / len(current), len(current)))
            if version is not None:
                changes.append(VersionChange(at, row_version))
            version, current = row_version, []
        current.append(score)
        last_at = at
        if len(current) == size:
            points.append(Point(at, version, sum(current) / size, size))
            current = []
    if current and version is not None:
        points.append(Point(last_at, version, sum(current) / len(current), len(current)))
    return LiveSeries(points[-MAX_POINTS:], changes, {})


async def live_series(pool: asyncpg.Pool, worker_id: str) -> LiveSeries:
    rows = await pool.fetch(_SCORED, worker_id, BUCKET * MAX_POINTS)
    series = bucket(
        [(_version(r["version"]), float(r["score"]), r["executed_at"].isoformat()) for r in rows]
    )
    by_version = {
        _version(r["version"]): (float(r["accuracy"]), int(r["calls"]))
        for r in await pool.fetch(_BY_VERSION, worker_id)
    }
    return LiveSeries(series.points, series.changes, by_version)
