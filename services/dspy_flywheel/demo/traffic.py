"""Labeled traffic for the demo worker and its running accuracy, per program version."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import dspy

from dspy_flywheel.tasks import get_task


def ticket_stream(seed: int) -> list[dspy.Example]:
    examples = list(get_task("classification").examples)
    random.Random(seed).shuffle(examples)
    return examples


class Tickets:
    """The demo's labeled tickets, each served once while fresh ones last.

    ``reserve(n)`` sets the last ``n`` aside (the phase after the reload measures on tickets no
    phase has seen). After ``recycle_from_now()`` (the job has taken its dataset snapshot) the
    tickets served are ones the candidate never learned from; once the fresh ones run out, those
    are served again, in turn, so a slow canary keeps deciding on live calls instead of ending
    the demo. ``reused`` counts the calls that re-served one.
    """

    def __init__(self, examples: Iterable[dspy.Example]) -> None:
        self._fresh = deque(examples)
        self._unseen_by_job: list[dspy.Example] = []
        self._recycling = False
        self.reused = 0

    def __len__(self) -> int:
        """Fresh tickets left."""
        return len(self._fresh)

    def reserve(self, n: int) -> Tickets:
        kept = [self._fresh.pop() for _ in range(min(n, len(self._fresh)))]
        return Tickets(reversed(kept))

    def recycle_from_now(self) -> None:
        self._recycling = True

    def next(self) -> dspy.Example | None:
        """The next ticket to serve; None when there is none (fresh or reusable) left."""
        if self._fresh:
            example = self._fresh.popleft()
            if self._recycling:
                self._unseen_by_job.append(example)
            return example
        if not self._unseen_by_job:
            return None
        example = self._unseen_by_job[self.reused % len(self._unseen_by_job)]
        self.reused += 1
        return example


@dataclass
class Tally:
    """Correct/total per served version plus a rolling window over the latest calls."""

    window: int = 12
    by_version: dict[str, list[int]] = field(default_factory=dict)
    recent: deque[int] = field(default_factory=deque)

    def add(self, version: int | str | None, correct: bool) -> None:
        """Count a call under its version (a string names a mix, e.g. "canary")."""
        key = version if isinstance(version, str) else "code" if version is None else f"v{version}"
        ok_total = self.by_version.setdefault(key, [0, 0])
        ok_total[0] += int(correct)
        ok_total[1] += 1
        self.recent.append(int(correct))
        while len(self.recent) > self.window:
            self.recent.popleft()

    def accuracy(self, key: str) -> float | None:
        ok, total = self.by_version.get(key, [0, 0])
        return ok / total if total else None

    def rolling(self) -> float | None:
        return sum(self.recent) / len(self.recent) if self.recent else None

    def calls(self) -> int:
        return sum(t for _, t in self.by_version.values())


def is_correct(example: dspy.Example, prediction: Any) -> bool:
    from dspy_flywheel.demo.worker import label_match

    return label_match(example, prediction)
