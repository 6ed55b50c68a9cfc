"""Answer metrics: normalized exact match and token F1, in DSPy's metric shape.

Answers are normalized by ``compile.judge.normalize`` (the platform's one rule) and then by the
benchmark's answer rules: any surrounding punctuation, Unicode compatibility forms and number
formats (``$1,200.00`` is ``1200``). ``metric(example, prediction, trace=None)`` returns a score
in [0, 1] for evaluation; while an optimizer bootstraps demos (``trace`` is set) it returns
whether the answer is good enough (exact: equal; f1: a correct score by the judge,
``SCORE_CORRECT``), as DSPy expects.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from dspy_flywheel.compile import judge

Metric = Callable[..., float | bool]

_CURLY_QUOTES = "\u201c\u201d\u2018\u2019\u00ab\u00bb"
_EDGE_PUNCTUATION = string.punctuation + string.whitespace + _CURLY_QUOTES
_NUMBER = re.compile(r"^[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize(text: object) -> str:
    """The judge's normalization, then any edge punctuation and numbers; '$1,200.00' -> '1200'."""
    value = judge.normalize(unicodedata.normalize("NFKC", str(text))).strip(_EDGE_PUNCTUATION)
    number = value.lstrip("$€£")
    if _NUMBER.match(number):
        amount = float(number.replace(",", ""))
        return str(int(amount)) if amount.is_integer() else repr(amount)
    return value


def exact_match(gold: object, predicted: object) -> float:
    return 1.0 if normalize(gold) == normalize(predicted) else 0.0


def _tokens(text: object) -> list[str]:
    value = normalize(text)
    value = "".join(" " if ch in string.punctuation else ch for ch in value)
    return _ARTICLES.sub(" ", value).split()


def token_f1(gold: object, predicted: object) -> float:
    gold_tokens, predicted_tokens = _tokens(gold), _tokens(predicted)
    if not gold_tokens or not predicted_tokens:
        return float(gold_tokens == predicted_tokens)
    common = sum((Counter(gold_tokens) & Counter(predicted_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


SCORERS: dict[str, Callable[[object, object], float]] = {"exact": exact_match, "f1": token_f1}


def make_metric(kind: str, output_fields: Sequence[str]) -> Metric:
    """A DSPy metric averaging ``kind`` ('exact' or 'f1') over the output fields."""
    if kind not in SCORERS:
        raise ValueError(f"metric must be one of {sorted(SCORERS)}, got {kind!r}")
    scorer = SCORERS[kind]
    fields = tuple(output_fields)

    def metric(example: Any, prediction: Any, trace: Any = None) -> float | bool:
        scores = [scorer(example[f], getattr(prediction, f, None) or "") for f in fields]
        score = sum(scores) / len(scores)
        if trace is not None:
            return judge.score_correct(score) if kind == "f1" else score >= 1.0
        return score

    metric.__name__ = f"{kind}_match" if kind == "exact" else "token_f1"
    return metric
