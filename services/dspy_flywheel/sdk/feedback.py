"""Feedback: labels as JSON objects of output fields, and scores from the worker's metric.

The worker remembers the inputs and outputs of its recent executions (a bounded LRU). When
feedback brings a label for one of them and no score, the metric scores the recorded outputs
against the label: ``metric(example, prediction, trace=None)`` as in DSPy, where ``example``
holds the inputs plus the label fields. Labels are read and the default metric
(``exact_match``) judges as everywhere else: ``compile.judge``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, NamedTuple

import dspy

from dspy_flywheel.compile.judge import label_object
from dspy_flywheel.compile.refs import Metric

log = logging.getLogger(__name__)


class Recorded(NamedTuple):
    inputs: dict[str, Any]
    outputs: dict[str, Any]


class RecentExecutions:
    """The last ``capacity`` successful executions, by execution id (thread-safe enough:
    single dict operations under the GIL; a lost race only evicts one entry early).

    Entries are plain ``(inputs, outputs)`` tuples (``put`` runs on every call: a NamedTuple
    costs a Python-level constructor call); ``get`` hands out ``Recorded``.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[str, tuple[dict[str, Any], dict[str, Any]]] = OrderedDict()

    def put(self, execution_id: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        items = self._items
        items[execution_id] = (inputs, outputs)
        if len(items) > self._capacity:
            try:  # noqa: SIM105  # not contextlib.suppress: runs on every call once full
                items.popitem(last=False)
            except KeyError:
                pass

    def get(self, execution_id: str) -> Recorded | None:
        entry = self._items.get(execution_id)
        return None if entry is None else Recorded(*entry)

    def __len__(self) -> int:
        return len(self._items)


def score_with(metric: Metric, recorded: Recorded, label: dict[str, Any]) -> float | None:
    """The metric's score in [0, 1] for a recorded execution against ``label`` (None on error)."""
    example = dspy.Example({**recorded.inputs, **label}).with_inputs(*recorded.inputs)
    prediction = dspy.Prediction(**recorded.outputs)
    try:
        raw = metric(example, prediction, None)
        score = float(raw)
    except Exception as exc:
        log.warning("metric %r failed on feedback: %s", getattr(metric, "__name__", metric), exc)
        return None
    return min(1.0, max(0.0, score))


def judge(
    recorded: Recorded | None,
    output_fields: list[str],
    metric: Metric,
    label: Any,
    score: float | None,
) -> tuple[dict[str, Any] | None, float | None]:
    """(label as output fields, score) for a feedback call; the metric scores the recorded
    outputs against the label when no score is given and the execution is remembered."""
    if label is None and score is None:
        raise ValueError("feedback needs a label, a score, or both")
    if score is not None and not 0.0 <= float(score) <= 1.0:
        raise ValueError(f"score must be in [0, 1], got {score!r}")
    if label is None:
        return None, float(score) if score is not None else None
    fields = list(recorded.outputs) if recorded is not None and recorded.outputs else output_fields
    found = label_object(dict(label.items()) if isinstance(label, dspy.Example) else label, fields)
    if found is None:
        raise ValueError(
            f"label {label!r} does not fit this worker's output fields {fields}: pass a dict of "
            "output fields, or a bare value when there is one"
        )
    if score is None and recorded is not None:
        score = score_with(metric, recorded, found)
    return found, None if score is None else float(score)
