"""Feedback: labels as JSON objects of output fields, and scores from the worker's metric.

The worker remembers the inputs and outputs of its recent executions (a bounded LRU). When
feedback brings a label for one of them and no score, the metric scores the recorded outputs
against the label: ``metric(example, prediction, trace=None)`` as in DSPy, where ``example``
holds the inputs plus the label fields. The default metric is ``exact_match``.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import dspy

log = logging.getLogger(__name__)

Metric = Callable[..., Any]
_SPACES = re.compile(r"\s+")
_EDGE = " \t\n\"'`.,;:!"


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


def normalize(value: Any) -> str:
    """Case-folded, whitespace-collapsed text without surrounding quotes or punctuation
    (the same normalization as the optimizer's default metric)."""
    return _SPACES.sub(" ", str(value)).strip(_EDGE).casefold()


def exact_match(example: Any, prediction: Any, trace: Any = None) -> float:
    """1.0 when every label field of ``example`` equals the prediction's (normalized), else 0.0."""
    labels = example.labels() if hasattr(example, "labels") else example
    keys = list(labels.keys())
    if not keys:
        return 0.0
    for key in keys:
        got = prediction.get(key) if hasattr(prediction, "get") else getattr(prediction, key, None)
        if got is None or normalize(got) != normalize(labels[key]):
            return 0.0
    return 1.0


def label_object(label: Any, fields: list[str]) -> dict[str, Any]:
    """The label as ``{output_field: value}``; a bare value needs exactly one output field."""
    if isinstance(label, dspy.Example):
        return dict(label.items())
    if isinstance(label, Mapping):
        return dict(label)
    if len(fields) == 1:
        return {fields[0]: label}
    raise ValueError(
        f"label {label!r} is a bare value but this worker has output fields {fields}; "
        "pass a dict of output fields"
    )


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
    fields = output_fields
    if recorded is not None:
        fields = [f for f in recorded.outputs if f != "reasoning"] or fields
    label_obj = label_object(label, fields)
    if score is None and recorded is not None:
        score = score_with(metric, recorded, label_obj)
    return label_obj, None if score is None else float(score)
