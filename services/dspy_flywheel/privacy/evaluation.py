"""Scoring recognizers against annotated cases (``tests/data/pii_cases*.jsonl`` format).

A case is ``{"id", "split", "text", "pii": [{"kind", "text"}, ...], "keep": [...]}``; each
annotation names an exact substring (repeated substrings are matched to successive
occurrences). ``keep`` lists look-alikes that must stay (order ids, versions, hashes...); a
case with neither ``pii`` nor ``keep`` is one look-alike as a whole.

What counts is what a reader of the stored text would see:

* a PII value is *removed* when every letter and digit of it lies inside predicted spans
  (of any kind: a phone taken for an ID is still gone); "Call <PHONE_1> 00" is a leak;
* a look-alike is *kept* when no predicted span touches it;
* a predicted span that touches no annotated PII value is a *stray* (a false alarm).

``exact`` counts values found as one span of the annotated kind with the same bounds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from dspy_flywheel.privacy.spans import Span

LOOK_ALIKE: Final = "LOOK_ALIKE"
Annotation = tuple[str, int, int]  # (kind, start, end)


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    text: str
    expected: tuple[Annotation, ...]
    split: str = "dev"
    keep: tuple[Annotation, ...] = ()

    @property
    def look_alikes(self) -> tuple[Annotation, ...]:
        if self.keep or self.expected:
            return self.keep
        return ((LOOK_ALIKE, 0, len(self.text)),)


@dataclass(slots=True)
class KindScore:
    removed: int = 0
    leaked: int = 0
    exact: int = 0
    spans: int = 0
    stray: int = 0

    @property
    def values(self) -> int:
        return self.removed + self.leaked

    @property
    def recall(self) -> float:
        return self.removed / self.values if self.values else 1.0

    @property
    def precision(self) -> float:
        return 1.0 - self.stray / self.spans if self.spans else 1.0

    def add(self, other: KindScore) -> None:
        self.removed += other.removed
        self.leaked += other.leaked
        self.exact += other.exact
        self.spans += other.spans
        self.stray += other.stray


@dataclass(slots=True)
class Report:
    by_kind: dict[str, KindScore] = field(default_factory=dict)
    look_alikes: int = 0
    look_alikes_kept: int = 0
    misses: list[tuple[str, str, str]] = field(default_factory=list)  # (case id, kind, text)
    false_alarms: list[tuple[str, str, str]] = field(default_factory=list)
    touched: list[tuple[str, str, str]] = field(default_factory=list)  # look-alikes hit

    @property
    def kept_rate(self) -> float:
        return self.look_alikes_kept / self.look_alikes if self.look_alikes else 1.0

    def total(self, kinds: Iterable[str] | None = None) -> KindScore:
        wanted = set(kinds) if kinds is not None else set(self.by_kind)
        total = KindScore()
        for kind, entry in self.by_kind.items():
            if kind in wanted:
                total.add(entry)
        return total


def load_cases(path: Path) -> list[Case]:
    cases = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row: dict[str, Any] = json.loads(line)
        text: str = row["text"]
        try:
            expected = _locate(text, row["pii"])
            keep = _locate(text, row.get("keep", []))
        except ValueError as exc:
            raise ValueError(f"{path.name} line {line_number}: {exc}") from None
        cases.append(Case(row["id"], text, expected, row.get("split", "dev"), keep))
    return cases


def _locate(text: str, items: list[dict[str, str]]) -> tuple[Annotation, ...]:
    found = []
    next_search: dict[str, int] = {}
    for item in items:
        start = text.find(item["text"], next_search.get(item["text"], 0))
        if start < 0:
            raise ValueError(f"{item['text']!r} not in text")
        end = start + len(item["text"])
        next_search[item["text"]] = end
        found.append((item["kind"], start, end))
    return tuple(found)


def score(find: Callable[[str], list[Span]], cases: Iterable[Case]) -> Report:
    report = Report()
    for case in cases:
        spans = find(case.text)
        covered = bytearray(len(case.text))
        for span in spans:
            covered[span.start : span.end] = b"\1" * (span.end - span.start)
        exact = {(s.kind, s.start, s.end) for s in spans}
        for kind, start, end in case.expected:
            entry = report.by_kind.setdefault(kind, KindScore())
            value = case.text[start:end]
            if all(covered[i] for i in range(start, end) if case.text[i].isalnum()):
                entry.removed += 1
            else:
                entry.leaked += 1
                report.misses.append((case.id, kind, value))
            entry.exact += (kind, start, end) in exact
        for span in spans:
            entry = report.by_kind.setdefault(span.kind, KindScore())
            entry.spans += 1
            if not any(_overlap(span, s, e) for _, s, e in case.expected):
                entry.stray += 1
                report.false_alarms.append((case.id, span.kind, case.text[span.start : span.end]))
        for kind, start, end in case.look_alikes:
            report.look_alikes += 1
            if any(_overlap(span, start, end) for span in spans):
                report.touched.append((case.id, kind, case.text[start:end]))
            else:
                report.look_alikes_kept += 1
    return report


def _overlap(span: Span, start: int, end: int) -> bool:
    return span.start < end and start < span.end
