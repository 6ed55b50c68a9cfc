"""Per-class confusion of a categorical label: what was expected vs what was predicted.

``{expected: {predicted: count}}`` over normalized values (``judge.normalize``); a failed call
counts as predicted ``"<error>"``. Built only for one label field that takes few values (a
class), since a confusion table of free text says nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from dspy_flywheel.compile.judge import normalize, output_of

FAILED: Final = "<error>"
Confusion = dict[str, dict[str, int]]
_MAX_CLASSES: Final = 30


def confusion(examples: Sequence[Any], predictions: Sequence[Any]) -> Confusion | None:
    """The table for ``examples`` (``dspy.Example``) and their predictions (None: failed);
    None when the label is not one categorical field."""
    names = {tuple(example.labels().keys()) for example in examples}
    if len(names) != 1:
        return None
    (fields,) = names
    if len(fields) != 1:
        return None
    (field,) = fields
    expected = [normalize(example[field]) for example in examples]
    if len(set(expected)) > min(_MAX_CLASSES, max(2, len(examples) // 2)):
        return None
    table: Confusion = {}
    for gold, prediction in zip(expected, predictions, strict=True):
        got = None if prediction is None else output_of(prediction, field)
        key = FAILED if got is None else normalize(got)
        row = table.setdefault(gold, {})
        row[key] = row.get(key, 0) + 1
    return table


def per_class(table: Confusion) -> dict[str, dict[str, float | int]]:
    """``{class: {"n", "correct", "recall"}}`` from a confusion table."""
    result: dict[str, dict[str, float | int]] = {}
    for gold, row in sorted(table.items()):
        n = sum(row.values())
        correct = row.get(gold, 0)
        result[gold] = {"n": n, "correct": correct, "recall": round(correct / n, 3) if n else 0.0}
    return result


def job_report(before: Confusion | None, after: Confusion | None) -> dict[str, Any]:
    """What a job's report shows: both tables and each class's recall before and after
    (the rules the new version learned, or lost). Empty when the label is not a class."""
    if before is None and after is None:
        return {}
    old, new = per_class(before or {}), per_class(after or {})
    classes = sorted(set(old) | set(new))
    return {
        "confusion": {"before": before, "after": after},
        "per_class": {
            name: {
                "n": (new.get(name) or old.get(name) or {}).get("n", 0),
                "recall_before": old.get(name, {}).get("recall"),
                "recall_after": new.get(name, {}).get("recall"),
            }
            for name in classes
        },
    }
