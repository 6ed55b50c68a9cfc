"""Labeled traffic for the demo worker and its running accuracy, per program version."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import dspy

from dspy_flywheel.tasks import get_task


def ticket_stream(seed: int) -> list[dspy.Example]:
    examples = list(get_task("classification").examples)
    random.Random(seed).shuffle(examples)
    return examples


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
