"""Default metric: normalized exact match over the example's output (label) fields."""

from __future__ import annotations

import re
from typing import Any

_SPACES = re.compile(r"\s+")
_EDGE = " \t\n\"'`.,;:!"


def normalize(value: Any) -> str:
    """Case-folded, whitespace-collapsed text without surrounding quotes or punctuation."""
    text = _SPACES.sub(" ", str(value)).strip(_EDGE)
    return text.casefold()


def exact_match(example: Any, prediction: Any, trace: Any = None) -> float:
    """1.0 when every labelled output field of ``example`` matches the prediction, else 0.0."""
    labels = example.labels()
    names = list(labels.keys())
    if not names:
        return 0.0
    for name in names:
        predicted = prediction.get(name) if hasattr(prediction, "get") else None
        if predicted is None or normalize(predicted) != normalize(labels[name]):
            return 0.0
    return 1.0
