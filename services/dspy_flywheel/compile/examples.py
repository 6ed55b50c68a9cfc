"""Training data in the shapes users and the store hand us, turned into ``dspy.Example``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class LocalExample:
    """An example collected in-process by ``DSPyAgent.collect_training_example``."""

    inputs: dict[str, Any]
    outputs: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_dspy(self) -> Any:
        import dspy

        return dspy.Example(**self.inputs, **self.outputs).with_inputs(*self.inputs)


def expected_outputs(
    outputs: Mapping[str, Any] | None, label: Any, output_fields: Sequence[str]
) -> dict[str, Any] | None:
    """The outputs an example should produce: the label when there is one, else the outputs.

    A label is a dict of output fields, a JSON object string, or a bare value for a
    single-output signature. Returns None when nothing usable matches the signature.
    """
    if isinstance(label, str):
        try:
            decoded = json.loads(label)
        except ValueError:
            decoded = label
        label = decoded
    if label is not None and not isinstance(label, dict):
        label = {output_fields[0]: label} if len(output_fields) == 1 else None
    if isinstance(label, dict) and label:
        if set(label) <= set(output_fields):
            return dict(label)
        if len(label) == 1 and len(output_fields) == 1:
            return {output_fields[0]: next(iter(label.values()))}
        return None
    if outputs and set(output_fields) <= set(outputs):
        return {name: outputs[name] for name in output_fields}
    return None


def to_example(item: Any, input_keys: Sequence[str] | None = None) -> Any:
    """A ``dspy.Example`` with inputs marked, from an Example, LocalExample or dict.

    Dicts may be ``{"inputs": {...}, "outputs": {...}}`` or flat (then ``input_keys`` says
    which keys are inputs).
    """
    import dspy

    if isinstance(item, dspy.Example):
        if item._input_keys is None:  # dspy exposes no public accessor
            if input_keys is None:
                raise ValueError("dspy.Example without inputs: call .with_inputs(...) first")
            return item.with_inputs(*[k for k in input_keys if k in item])
        return item
    if isinstance(item, LocalExample):
        return item.to_dspy()
    if isinstance(item, Mapping):
        if "inputs" in item and isinstance(item["inputs"], Mapping):
            outputs = item.get("outputs") or {}
            return dspy.Example(**item["inputs"], **outputs).with_inputs(*item["inputs"])
        if input_keys is None:
            raise ValueError("flat dict examples need input_keys (the program's input fields)")
        return dspy.Example(**item).with_inputs(*[k for k in input_keys if k in item])
    raise TypeError(f"cannot use {type(item).__name__} as a training example")


def to_examples(items: Iterable[Any], input_keys: Sequence[str] | None = None) -> list[Any]:
    return [to_example(item, input_keys) for item in items]
