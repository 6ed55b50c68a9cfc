"""A small text classifier learned from labeled examples, saved with the program version.

Features are the words of the input fields, with or without their in-word character 3-5-grams
(``FEATURE_SETS``; ``fit_best`` picks one by cross-validation on the training rows), as
sublinear TF-IDF over L2-normalized rows; the model is a multinomial logistic regression fitted
by full-batch gradient descent.
Pure numpy over sparse rows, deterministic (zero start, fixed steps), no LM call. Features seen
in fewer than ``MIN_DF`` training rows are dropped, and at most ``MAX_FEATURES`` are kept, so the
saved state stays small. ``top`` gives the most probable class and its probability.

Bounded cost: the model reads the first ``MAX_CHARS`` characters of a call's inputs (the LM still
reads them all), and ``fit_best`` fits on a seeded sample small enough that one fit stores at
most ``MAX_ENTRIES`` features and does at most ``MAX_WORK`` entry-class products per step;
``TooCostly`` says when that sample would leave fewer rows than the caller needs.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

MIN_DF: Final = 2
MAX_FEATURES: Final = 20_000
# saved numbers (a weight per class and an idf per feature): ~0.5 MB of JSON, so that a program
# version with its retrieval pool stays within one bus message (Kafka's default 1 MB)
MAX_STATE_FLOATS: Final = 40_000
FEATURE_SETS: Final = ("words+chars", "words")  # in order of preference on a tie
CV_FOLDS: Final = 5
CV_MAX_ROWS: Final = 600  # cross-validation on a seeded sample at most this large
MAX_CHARS: Final = 2_000  # of a call's joined input fields, what the features are built from
MAX_ENTRIES: Final = 1_000_000  # stored (row, feature) entries in one fit
MAX_WORK: Final = 4_000_000  # entries x classes in one gradient step of one fit
_MAX_ABS: Final = 1e6  # of a weight, bias or idf in a loaded model
_GATHER: Final = 1_000_000  # floats gathered at once in a sparse product (8 MB)
_WORD = re.compile(r"\w+", re.UNICODE)
Floats = NDArray[np.float64]


def features(text: str, feature_set: str = "words+chars") -> Counter[str]:
    """Counts of the words (``w:``) of ``text`` and, for ``words+chars``, of their in-word
    character 3-5-grams (``c:``)."""
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; accepted: {FEATURE_SETS}")
    found: Counter[str] = Counter()
    for word in _WORD.findall(text.casefold()):
        found["w:" + word] += 1
        if feature_set == "words+chars":
            padded = f" {word} "
            for n in (3, 4, 5):
                found.update("c:" + padded[i : i + n] for i in range(len(padded) - n + 1))
    return found


@dataclass(frozen=True)
class _Rows:
    """Sparse rows (CSR): row ``r`` has ``values[start[r]:start[r+1]]`` at ``columns[...]``."""

    start: NDArray[np.int64]
    columns: NDArray[np.int64]
    values: Floats
    row_of: NDArray[np.int64]

    def times(self, matrix: Floats) -> Floats:
        return _summed(self.row_of, self.values, matrix, self.columns, len(self.start) - 1)

    def transposed_times(self, matrix: Floats, width: int) -> Floats:
        return _summed(self.columns, self.values, matrix, self.row_of, width)


def _summed(
    into: NDArray[np.int64],
    values: Floats,
    matrix: Floats,
    picks: NDArray[np.int64],
    size: int,
) -> Floats:
    """``out[into[i]] += values[i] * matrix[picks[i]]``, one np.bincount per class (fast;
    np.add.at is not), over chunks of at most ``_GATHER`` gathered floats."""
    width = matrix.shape[1]
    out = np.zeros((size, width))
    step = max(1, _GATHER // max(width, 1))
    for lo in range(0, len(into), step):
        rows = matrix[picks[lo : lo + step]] * values[lo : lo + step, None]
        for c in range(width):
            out[:, c] += np.bincount(into[lo : lo + step], rows[:, c], size)
    return out


class TooCostly(ValueError):
    """The rows affordable within the fit's budget are fewer than the caller needs."""


class LabelModel:
    """Class probabilities for the ``input_fields`` of a call (see the module docstring)."""

    def __init__(
        self,
        input_fields: Sequence[str],
        vocabulary: Sequence[str],
        idf: Sequence[float] | Floats,
        weights: Sequence[Sequence[float]] | Floats,
        bias: Sequence[float] | Floats,
        classes: Sequence[Any],
        feature_set: str = FEATURE_SETS[0],
    ) -> None:
        if feature_set not in FEATURE_SETS:
            raise ValueError(f"label model: unknown feature set {feature_set!r}")
        self.input_fields = list(input_fields)
        self.feature_set = feature_set
        self.vocabulary = list(vocabulary)
        self._column = {name: i for i, name in enumerate(self.vocabulary)}
        self.idf = np.asarray(idf, dtype=np.float64)
        self.weights = np.asarray(weights, dtype=np.float64).reshape(len(self.vocabulary), -1)
        self.bias = np.asarray(bias, dtype=np.float64)
        self.classes = list(classes)
        if not self.classes or not self.vocabulary:
            raise ValueError("label model: no classes or no vocabulary")
        if self.weights.shape[1] != len(self.classes) or self.bias.shape != (len(self.classes),):
            raise ValueError("label model: weights, bias and classes disagree in size")
        if self.idf.shape != (len(self.vocabulary),):
            raise ValueError("label model: idf and vocabulary disagree in size")
        if not all(
            (np.abs(a) < _MAX_ABS).all() for a in (self.idf, self.weights, self.bias)
        ):  # NaN fails too; a fitted model stays far below the bound
            raise ValueError("label model: a weight, bias or idf is not a finite number")
        if not self.input_fields or not all(isinstance(f, str) for f in self.input_fields):
            raise ValueError("label model: input_fields must be a list of field names")

    @classmethod
    def fit(
        cls,
        rows: Sequence[Mapping[str, Any]],
        input_fields: Sequence[str],
        labels: Sequence[Any],
        *,
        feature_set: str = FEATURE_SETS[0],
        max_features: int = MAX_FEATURES,
        strength: float = 30.0,
        steps: int = 300,
        rate: float = 5.0,
    ) -> LabelModel:
        """Fit on ``rows`` (their ``input_fields``) with ``labels`` (hashable, e.g. normalized
        text; ``classes`` keeps them in first-seen order). ``strength`` is the inverse L2
        penalty per row."""
        if len(rows) != len(labels) or not rows:
            raise ValueError("label model: needs as many labels as rows, and at least one")
        counts = [features(_text(row, input_fields), feature_set) for row in rows]
        seen: Counter[str] = Counter()
        for found in counts:
            seen.update(found.keys())
        if not seen:
            raise ValueError("label model: the rows' inputs have no words to learn from")
        kept = [(f, n) for f, n in seen.items() if n >= MIN_DF] or list(seen.items())
        kept.sort(key=lambda item: (-item[1], item[0]))
        vocabulary = sorted(f for f, _ in kept[:max_features])
        size = len(rows)
        idf = [math.log((1 + size) / (1 + seen[f])) + 1 for f in vocabulary]
        classes = list(dict.fromkeys(labels))
        model = cls(
            input_fields,
            vocabulary,
            idf,
            np.zeros((len(vocabulary), len(classes))),
            np.zeros(len(classes)),
            classes,
            feature_set,
        )
        x = model._rows(counts)
        del counts, seen
        target = np.zeros((size, len(classes)))
        target[np.arange(size), [classes.index(label) for label in labels]] = 1.0
        for _ in range(steps):
            error = (_softmax(x.times(model.weights) + model.bias) - target) / size
            model.weights -= rate * (
                x.transposed_times(error, len(vocabulary)) + model.weights / (strength * size)
            )
            model.bias -= rate * error.sum(axis=0)
        return model

    @classmethod
    def fit_best(
        cls,
        rows: Sequence[Mapping[str, Any]],
        input_fields: Sequence[str],
        labels: Sequence[Any],
        *,
        min_rows: int = 1,
        state_floats: int = MAX_STATE_FLOATS,
    ) -> LabelModel:
        """``fit`` with the feature set of the best ``CV_FOLDS``-fold cross-validated accuracy
        (ties go to the first), on a seeded sample within the budget (module docstring): the
        cross-validation on at most ``CV_MAX_ROWS`` rows and half the budget. Raises
        ``TooCostly`` when fewer than ``min_rows`` rows are affordable. At most ``state_floats``
        numbers are saved: the features are capped to fit."""
        order = list(range(len(rows)))
        random.Random(0).shuffle(order)
        classes = len(set(labels))
        capacity = _row_capacity(rows, input_fields, classes, order)
        max_features = max(1, min(MAX_FEATURES, state_floats // (classes + 1)))
        affordable = min(len(rows), int(capacity))
        if affordable < min_rows:
            raise TooCostly(
                f"label model: only {affordable} of {len(rows)} rows fit its budget "
                f"(long inputs or many classes), below the {min_rows} needed"
            )
        sample = order[: min(CV_MAX_ROWS, max(int(capacity / 2), CV_FOLDS))]
        picked = ([rows[i] for i in sample], input_fields, [labels[i] for i in sample])
        scores = [_cv_accuracy(*picked, name, max_features) for name in FEATURE_SETS]
        best = FEATURE_SETS[scores.index(max(scores))]
        kept = sorted(order[:affordable])  # in their order: all rows fit as they came
        return cls.fit(
            [rows[i] for i in kept],
            input_fields,
            [labels[i] for i in kept],
            feature_set=best,
            max_features=max_features,
        )

    def _rows(self, counts: Sequence[Counter[str]]) -> _Rows:
        start, columns, values = [0], [], []
        for found in counts:
            row = [(self._column[f], math.log1p(n)) for f, n in found.items() if f in self._column]
            weighted = [(c, v * self.idf[c]) for c, v in sorted(row)]
            norm = math.sqrt(sum(v * v for _, v in weighted)) or 1.0
            columns += [c for c, _ in weighted]
            values += [v / norm for _, v in weighted]
            start.append(len(columns))
        bounds = np.asarray(start, dtype=np.int64)
        return _Rows(
            bounds,
            np.asarray(columns, dtype=np.int64),
            np.asarray(values, dtype=np.float64),
            np.repeat(np.arange(len(counts), dtype=np.int64), np.diff(bounds)),
        )

    def probabilities(self, inputs: Mapping[str, Any]) -> Floats:
        x = self._rows([features(_text(inputs, self.input_fields), self.feature_set)])
        result: Floats = _softmax(x.times(self.weights) + self.bias)[0]
        return result

    def top(self, inputs: Mapping[str, Any]) -> tuple[Any, float]:
        """The most probable class for ``inputs`` and its probability."""
        probabilities = self.probabilities(inputs)
        best = int(np.argmax(probabilities))
        return self.classes[best], float(probabilities[best])

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "tfidf-logreg",
            "feature_set": self.feature_set,
            "input_fields": self.input_fields,
            "vocabulary": self.vocabulary,
            "idf": [round(float(v), 6) for v in self.idf],
            "weights": [[round(float(v), 6) for v in row] for row in self.weights],
            "bias": [round(float(v), 6) for v in self.bias],
            "classes": self.classes,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> LabelModel:
        if state.get("kind") != "tfidf-logreg":
            raise ValueError(f"not a label model state: kind={state.get('kind')!r}")
        return cls(
            state["input_fields"],
            state["vocabulary"],
            state["idf"],
            state["weights"],
            state["bias"],
            state["classes"],
            state.get("feature_set", FEATURE_SETS[0]),
        )


def _cv_accuracy(
    rows: Sequence[Mapping[str, Any]],
    input_fields: Sequence[str],
    labels: Sequence[Any],
    feature_set: str,
    max_features: int = MAX_FEATURES,
) -> float:
    right = 0
    for fold in range(CV_FOLDS):
        train = [i for i in range(len(rows)) if i % CV_FOLDS != fold]
        held = [i for i in range(len(rows)) if i % CV_FOLDS == fold]
        if not train or not held:
            continue
        model = LabelModel.fit(
            [rows[i] for i in train],
            input_fields,
            [labels[i] for i in train],
            feature_set=feature_set,
            max_features=max_features,
        )
        right += sum(model.top(rows[i])[0] == labels[i] for i in held)
    return right / len(rows)


def _text(values: Mapping[str, Any], names: Sequence[str]) -> str:
    return "\n".join(str(values.get(name, "")) for name in names)[:MAX_CHARS]


def _row_capacity(
    rows: Sequence[Mapping[str, Any]], input_fields: Sequence[str], classes: int, order: list[int]
) -> float:
    """How many rows like these one fit can take within ``MAX_ENTRIES`` and ``MAX_WORK``, from
    the feature count of (at most) the first 50 rows in ``order``, with the larger feature set."""
    probe = order[:50]
    if not probe:
        return 0.0
    per_row = sum(len(features(_text(rows[i], input_fields))) for i in probe) / len(probe)
    return min(MAX_ENTRIES, MAX_WORK / max(classes, 1)) / max(per_row, 1.0)


def _softmax(scores: Floats) -> Floats:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    result: Floats = shifted / shifted.sum(axis=1, keepdims=True)
    return result
