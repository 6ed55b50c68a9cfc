"""Optimizers that learn a task's rules from its labeled examples, with no LM calls to compile.

* ``StratifiedFewShot``: labeled demos that cover the label space. When the label takes few
  values (a class), the demos go round-robin over the classes, the rarest class not last, so
  every class present in the training set is shown before any is shown twice; otherwise a
  seeded sample. As many as ``max_labeled_demos`` (the prompt, not the optimizer, is the limit).
* ``RetrievalFewShot``: one stratified demo per class (up to ``max_labeled_demos``) fixed in the
  prompt, plus the ``k`` training examples nearest to each input by BM25
  (``compile.retrieval``), whose index is saved with the program. Similar past cases carry the
  precedence rules that four bootstrapped demos cannot show.

Both follow DSPy's teleprompter shape: ``compile(student, *, trainset, valset=None)``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from dspy_flywheel.compile.cascade import Cascade, CascadeMixin
from dspy_flywheel.compile.judge import label_fields, literal_values, normalize
from dspy_flywheel.compile.label_model import MAX_STATE_FLOATS, LabelModel
from dspy_flywheel.compile.mixins import attach
from dspy_flywheel.compile.retrieval import (
    POOL_MAX_BYTES,
    BM25Index,
    RetrievingMixin,
    bounded_pool,
)

log = logging.getLogger(__name__)

# A label is a class when it takes at most this share of the training set's size in values.
_CLASS_SHARE = 1 / 3


def classes_of(trainset: Sequence[Any], fields: Sequence[str]) -> dict[tuple[str, ...], list[Any]]:
    """Examples grouped by their label (all ``fields`` normalized), in first-seen order."""
    groups: dict[tuple[str, ...], list[Any]] = {}
    for example in trainset:
        groups.setdefault(tuple(normalize(example.get(n, "")) for n in fields), []).append(example)
    return groups


def is_categorical(groups: dict[tuple[str, ...], list[Any]], size: int) -> bool:
    return 1 < len(groups) <= max(2, int(size * _CLASS_SHARE))


def stratified(trainset: Sequence[Any], fields: Sequence[str], k: int, seed: int) -> list[Any]:
    """Up to ``k`` examples covering every class round-robin (a seeded sample if no classes)."""
    rng = random.Random(seed)
    shuffled = list(trainset)
    rng.shuffle(shuffled)
    groups = classes_of(shuffled, fields)
    if not is_categorical(groups, len(shuffled)):
        return shuffled[:k]
    queues = sorted(groups.values(), key=len)  # rare classes first in each round
    picked: list[Any] = []
    while len(picked) < k and any(queues):
        for queue in queues:
            if queue and len(picked) < k:
                picked.append(queue.pop(0))
    return picked


def _fields(predictor: Any) -> tuple[list[str], list[str]]:
    signature = predictor.signature
    return list(signature.input_fields), label_fields(list(signature.output_fields))


def _usable(trainset: Sequence[Any], inputs: Sequence[str], labels: Sequence[str]) -> list[Any]:
    return [ex for ex in trainset if all(name in ex for name in [*inputs, *labels])]


def _row(example: Any, names: Sequence[str]) -> dict[str, Any]:
    return {name: example[name] for name in names}


class StratifiedFewShot:
    """Labeled demos covering the label space (see the module docstring)."""

    def __init__(self, max_labeled_demos: int = 16, seed: int = 0) -> None:
        if max_labeled_demos < 1:
            raise ValueError("max_labeled_demos must be at least 1")
        self.max_labeled_demos, self.seed = max_labeled_demos, seed

    def fixed_demos(self, predictor: Any, trainset: Sequence[Any]) -> list[dict[str, Any]]:
        inputs, labels = _fields(predictor)
        usable = _usable(trainset, inputs, labels)
        chosen = stratified(usable, labels, self.max_labeled_demos, self.seed)
        return [_row(ex, [*inputs, *labels]) for ex in chosen]

    def compile(self, student: Any, *, trainset: Sequence[Any], valset: Any = None) -> Any:
        program = student.reset_copy()
        for predictor in program.predictors():
            predictor.demos = self.fixed_demos(predictor, trainset)
        return program


class RetrievalFewShot(StratifiedFewShot):
    """Fixed class-covering demos plus ``k`` BM25-retrieved demos per input."""

    def __init__(self, max_labeled_demos: int = 8, k: int = 6, seed: int = 0) -> None:
        super().__init__(max_labeled_demos, seed)
        if k < 1:
            raise ValueError("k (retrieved demos per input) must be at least 1")
        self.k = k

    def compile(self, student: Any, *, trainset: Sequence[Any], valset: Any = None) -> Any:
        program = student.reset_copy()
        for predictor in program.predictors():
            inputs, labels = _fields(predictor)
            usable = _usable(trainset, inputs, labels)
            groups = classes_of(usable, labels)
            per_class = len(groups) if is_categorical(groups, len(usable)) else 2
            fixed = stratified(usable, labels, min(per_class, self.max_labeled_demos), self.seed)
            predictor.demos = [_row(ex, [*inputs, *labels]) for ex in fixed]
            share = POOL_MAX_BYTES // len(program.predictors())  # all in one bus message
            pool = bounded_pool([_row(ex, [*inputs, *labels]) for ex in usable], share, self.seed)
            attach(predictor, RetrievingMixin, BM25Index(pool, inputs, k=self.k) if pool else None)
        return program


class RetrievalCascade(RetrievalFewShot):
    """``RetrievalFewShot`` plus, where the label is a class and there are at least
    ``rows_per_class`` labeled rows per class, a label model that answers the calls it is at
    least ``threshold`` sure of (``compile.cascade``); the LM answers the rest. With fewer rows
    the model fits them exactly and its confidence says little (the demo's 20 rows over 4
    classes: the gate saw it lose 7 of 45 holdout examples the code program got right)."""

    def __init__(
        self,
        max_labeled_demos: int = 8,
        k: int = 6,
        threshold: float = 0.5,
        rows_per_class: int = 10,
        seed: int = 0,
    ) -> None:
        super().__init__(max_labeled_demos, k, seed)
        Cascade.check_threshold(threshold)
        if rows_per_class < 1:
            raise ValueError("rows_per_class must be at least 1")
        self.threshold, self.rows_per_class = threshold, rows_per_class

    def compile(self, student: Any, *, trainset: Sequence[Any], valset: Any = None) -> Any:
        program = super().compile(student, trainset=trainset)
        for name, predictor in program.named_predictors():
            inputs, labels = _fields(predictor)
            spelled = _spelled_labels(predictor, labels, _usable(trainset, inputs, labels))
            groups = classes_of([ex for ex, _ in spelled], labels)
            if not is_categorical(groups, len(spelled)):
                continue
            needed = self.rows_per_class * len(groups)
            if len(spelled) < needed:
                continue
            try:
                model = LabelModel.fit_best(
                    [_row(ex, inputs) for ex, _ in spelled],
                    inputs,
                    [label for _, label in spelled],
                    min_rows=needed,
                    state_floats=MAX_STATE_FLOATS // len(program.predictors()),
                )
            except ValueError as exc:  # no words to learn from, or over budget (TooCostly)
                log.info("%s: no label model: %s", name, exc)
                continue
            attach(predictor, CascadeMixin, Cascade(model, labels, self.threshold))
        return program


_SCALARS = (str, int, float, bool)


def _spelled_labels(
    predictor: Any, labels: Sequence[str], usable: Sequence[Any]
) -> list[tuple[Any, tuple[Any, ...]]]:
    """Each usable example with the label the cascade would answer for it: a value of the
    field's ``Literal`` where it has one, else the class's first-seen spelling (as text on a
    ``str`` field, whatever type the label came in). Examples with a
    label that is not a scalar, or outside the ``Literal``, are left out (the LM answers those)."""
    fields = predictor.signature.output_fields
    literals = {n: literal_values(fields[n]) for n in labels}
    allowed = {n: values for n, values in literals.items() if values is not None}
    first: dict[tuple[str, ...], tuple[Any, ...]] = {}
    result = []
    for ex in usable:
        values = tuple(ex[n] for n in labels)
        if not all(isinstance(v, _SCALARS) for v in values):
            continue
        key = tuple(normalize(v) for v in values)
        spelled = first.setdefault(key, values)
        answer = tuple(
            next((a for a in allowed[n] if normalize(a) == k), None)
            if n in allowed
            else _as_typed(v, fields[n])
            for n, k, v in zip(labels, key, spelled, strict=True)
        )
        if all(v is not None for v in answer):
            result.append((ex, answer))
    return result


def _as_typed(value: Any, field: Any) -> Any:
    """``value`` as a ``str`` field answers it (a label sent as 3 is answered "3")."""
    return str(value) if getattr(field, "annotation", None) is str else value


STRATEGIES: dict[str, type] = {
    "StratifiedFewShot": StratifiedFewShot,
    "RetrievalFewShot": RetrievalFewShot,
    "RetrievalCascade": RetrievalCascade,
}
