"""Was a call correct? The one answer the SDK, the trigger, the optimizer and the tasks share.

- **Values** are compared normalized: text is case-folded, whitespace collapsed and surrounding
  quotes and punctuation stripped (``'"Billing." '`` equals ``billing``); any other value is
  compared as compact JSON with sorted keys, normalized the same way.
- **A label** names the expected outputs: an object of output fields, a JSON object string, or a
  bare value (JSON or plain text) when the worker has one label field (``reasoning`` is never a
  label field). A one-key object on a one-field worker is read as that field. Anything else
  cannot be read (None), and such a call is not judged.
- **A call** is correct when every labelled field matches its output; a failed call (no
  outputs) is incorrect. **A score** is correct when it is at least ``SCORE_CORRECT``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, get_args, get_origin

SCORE_CORRECT: Final = 0.5
_EDGE: Final = " \t\n\"'`.,;:!"
_NOT_LABELS: Final = frozenset({"reasoning"})


def normalize(value: Any) -> str:
    """Case-folded, whitespace-collapsed text without surrounding quotes or punctuation."""
    if not isinstance(value, str):
        value = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return " ".join(value.split()).strip(_EDGE).casefold()


def score_correct(score: float) -> bool:
    return score >= SCORE_CORRECT


def label_fields(output_fields: Sequence[str]) -> list[str]:
    """The output fields a label is about (all but ``reasoning``)."""
    return [name for name in output_fields if name not in _NOT_LABELS]


def literal_values(field: Any) -> tuple[Any, ...] | None:
    """The values a signature field's ``Literal`` annotation allows; None when it has none."""
    annotation = getattr(field, "annotation", None)
    return get_args(annotation) if get_origin(annotation) is Literal else None


def parse_label(label: Any) -> Any:
    """A label as sent: JSON text decoded (object, string, number...), plain text as is."""
    if isinstance(label, str):
        try:
            return json.loads(label)
        except ValueError:
            pass  # plain text: a bare value
    return label


def is_blank(label: Any) -> bool:
    """No label at all: None, JSON ``null`` or an empty object."""
    parsed = parse_label(label)
    return parsed is None or (isinstance(parsed, Mapping) and not parsed)


def label_object(label: Any, output_fields: Sequence[str]) -> dict[str, Any] | None:
    """The label as ``{output_field: expected value}``; None when it cannot be read for
    ``output_fields`` (no label, an empty object, fields the worker does not have, or a bare
    value for a worker with several label fields)."""
    label = parse_label(label)
    if type(label) is dict or isinstance(label, Mapping):  # dict first: ABC checks are slow
        if not label:
            return None
        if all(name in output_fields for name in label):
            return dict(label)
        if len(label) != 1:
            return None
        (label,) = label.values()  # a one-key object: read as the only label field
    names = label_fields(output_fields)
    return {names[0]: label} if label is not None and len(names) == 1 else None


def output_of(outputs: Any, name: str) -> Any:
    """Field ``name`` of a mapping or a prediction (None when it has none)."""
    return outputs.get(name) if hasattr(outputs, "get") else getattr(outputs, name, None)


def outputs_match(expected: Mapping[str, Any], outputs: Any) -> bool:
    """Every expected field is in ``outputs`` (a mapping or prediction) and equal, normalized."""
    for name, value in expected.items():
        got = output_of(outputs, name)
        if got is None or normalize(got) != normalize(value):
            return False
    return True


def label_verdict(label: Any, outputs: Mapping[str, Any] | None) -> bool | None:
    """Was a call with ``outputs`` right, by ``label``? False for a failed call (None outputs),
    None when the label cannot be read for these outputs."""
    if outputs is None:
        return False
    expected = label_object(label, list(outputs))
    return None if expected is None else outputs_match(expected, outputs)


def exact_match(example: Any, prediction: Any, trace: Any = None) -> float:
    """The default DSPy metric: 1.0 when every label field of ``example`` (a ``dspy.Example``
    or a mapping) matches ``prediction``, else 0.0."""
    labels = example.labels() if hasattr(example, "labels") else example
    return 1.0 if len(labels) and outputs_match(labels, prediction) else 0.0
