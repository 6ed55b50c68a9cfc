"""Training data in the shapes users and the store hand us, turned into ``dspy.Example``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dspy_flywheel.compile.judge import is_blank, label_object


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
    """The outputs an example should produce: the label when there is one (read as
    ``judge.label_object`` reads it), else the recorded outputs. None when the label cannot be
    read for ``output_fields``, or there is no label and the outputs do not cover them."""
    if not is_blank(label):
        return label_object(label, output_fields)
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
