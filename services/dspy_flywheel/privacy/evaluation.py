"""Scoring recognizers against annotated cases (``tests/data/pii_cases.jsonl`` format).

A case is ``{"id", "split", "text", "pii": [{"kind", "text"}, ...]}``; each annotation names an
exact substring (repeated substrings are matched to successive occurrences). A predicted
span counts as a true positive only when kind, start and end all match.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dspy_flywheel.privacy.spans import Span


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    text: str
    expected: tuple[tuple[str, int, int], ...]  # (kind, start, end)
    split: str = "dev"


@dataclass(slots=True)
class KindScore:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass(slots=True)
class Report:
    by_kind: dict[str, KindScore] = field(default_factory=dict)
    misses: list[tuple[str, str, str]] = field(default_factory=list)  # (case id, kind, text)
    false_alarms: list[tuple[str, str, str]] = field(default_factory=list)

    def total(self, kinds: Iterable[str] | None = None) -> KindScore:
        wanted = set(kinds) if kinds is not None else set(self.by_kind)
        total = KindScore()
        for kind, score in self.by_kind.items():
            if kind in wanted:
                total.tp += score.tp
                total.fp += score.fp
                total.fn += score.fn
        return total


def load_cases(path: Path) -> list[Case]:
    cases = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row: dict[str, Any] = json.loads(line)
        text: str = row["text"]
        expected = []
        next_search: dict[str, int] = {}
        for item in row["pii"]:
            start = text.find(item["text"], next_search.get(item["text"], 0))
            if start < 0:
                raise ValueError(f"line {line_number}: {item['text']!r} not in text")
            end = start + len(item["text"])
            next_search[item["text"]] = end
            expected.append((item["kind"], start, end))
        cases.append(Case(row["id"], text, tuple(expected), row.get("split", "dev")))
    return cases


def score(find: Callable[[str], list[Span]], cases: Iterable[Case]) -> Report:
    report = Report()
    for case in cases:
        predicted = {(s.kind, s.start, s.end) for s in find(case.text)}
        expected = set(case.expected)
        for kind, start, end in predicted | expected:
            entry = report.by_kind.setdefault(kind, KindScore())
            hit = (kind, start, end)
            if hit in predicted and hit in expected:
                entry.tp += 1
            elif hit in predicted:
                entry.fp += 1
                report.false_alarms.append((case.id, kind, case.text[start:end]))
            else:
                entry.fn += 1
                report.misses.append((case.id, kind, case.text[start:end]))
    return report
