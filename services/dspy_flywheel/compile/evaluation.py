"""Scoring a program on examples: mean metric in [0, 1], errors counted, never silently hidden,
and for a categorical label the per-class confusion (``compile.confusion``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from dspy_flywheel.compile.confusion import Confusion, confusion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    score: float
    n: int
    errors: int
    scores: tuple[float, ...] = ()  # per example, in the order given (a failed call scores 0)
    confusion: Confusion | None = None

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"score": self.score, "n": self.n, "errors": self.errors}
        if self.confusion is not None:
            result["confusion"] = self.confusion
        return result


class EvaluationFailed(RuntimeError):
    pass


Scored = tuple[float, bool, Any]  # (metric, failed, prediction or None)


def _score_one(program: Any, example: Any, metric: Callable[..., Any], known: Any = None) -> Scored:
    if known is not None:  # the program's answer is already known (served live): not re-asked
        return float(metric(example, known)), False, known
    try:
        prediction = program(**example.inputs())
    except Exception as exc:  # one failed call scores 0; the caller sees the error count
        log.debug("evaluation call failed: %s", exc)
        return 0.0, True, None
    value = metric(example, prediction)
    return float(value), False, prediction


def evaluate(
    program: Any,
    examples: Sequence[Any],
    metric: Callable[..., Any],
    *,
    num_threads: int = 1,
    max_error_rate: float = 0.5,
    known: Sequence[Any] | None = None,
) -> EvalResult:
    """Mean metric over ``examples``; raises EvaluationFailed when too many calls raise.

    ``known``: per example, the program's prediction when it is already known, else None."""
    if not examples:
        raise EvaluationFailed("nothing to evaluate: the example set is empty")
    answers = list(known) if known is not None else [None] * len(examples)
    if len(answers) != len(examples):
        raise ValueError(f"{len(answers)} known answers for {len(examples)} examples")
    if num_threads > 1:
        import dspy

        lm = dspy.settings.lm

        def run(example: Any, answer: Any) -> Scored:
            with dspy.context(lm=lm):
                return _score_one(program, example, metric, answer)

        with ThreadPoolExecutor(max_workers=num_threads) as pool:
            results = list(pool.map(run, examples, answers))
    else:
        results = [
            _score_one(program, e, metric, a) for e, a in zip(examples, answers, strict=True)
        ]
    errors = sum(1 for _, failed, _ in results if failed)
    if errors > max_error_rate * len(examples):
        raise EvaluationFailed(f"{errors} of {len(examples)} evaluation calls raised")
    scores = tuple(s for s, _, _ in results)
    table = confusion(examples, [prediction for _, _, prediction in results])
    return EvalResult(sum(scores) / len(examples), len(examples), errors, scores, table)
