"""A confident label model answers before the LM: a cascade saved with the program version.

A predictor with a cascade is a ``dspy.Predict`` whose class gains ``CascadeMixin``: on each
call the label model (``compile.label_model``) scores the call's inputs; when its most probable
class reaches ``threshold`` that class is the answer, with no LM call, else the call goes on to
the LM as before (with its retrieved demos, when it has them). Only predictors whose outputs are
all label fields (``reasoning`` aside, which then says where the answer came from) get one.
``dump_state`` adds a ``"cascade"`` entry and ``load_program_state`` restores it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from dspy_flywheel.compile.judge import literal_values
from dspy_flywheel.compile.label_model import LabelModel
from dspy_flywheel.compile.mixins import SavedExtra

STATE_KEY: Final = "cascade"


class Cascade:
    """A label model, the output fields its classes fill, and the confidence that answers."""

    def __init__(self, model: LabelModel, fields: list[str], threshold: float) -> None:
        self.check_threshold(threshold)
        if not isinstance(fields, list | tuple) or not all(isinstance(f, str) for f in fields):
            raise ValueError(f"cascade fields must be a list of field names, got {fields!r}")
        if not fields or any(
            not isinstance(c, list | tuple) or len(c) != len(fields) for c in model.classes
        ):
            raise ValueError(f"cascade classes do not each give one value per field {fields}")
        self.model, self.fields, self.threshold = model, list(fields), threshold

    def check_against(self, signature: Any) -> None:
        """Raises ValueError unless the cascade reads the signature's inputs and answers with
        its output fields, with values of their ``Literal`` where they have one."""
        outputs, inputs = signature.output_fields, signature.input_fields
        if not set(self.fields) <= set(outputs) or not set(self.model.input_fields) <= set(inputs):
            raise ValueError(
                f"cascade fields {self.fields} / inputs {self.model.input_fields} are not the "
                f"signature's ({list(outputs)} / {list(inputs)})"
            )
        for i, name in enumerate(self.fields):
            allowed = literal_values(outputs[name])
            if allowed is None:
                continue
            if stray := [c[i] for c in self.model.classes if c[i] not in allowed]:
                raise ValueError(f"cascade class values {stray} are not allowed for {name}")

    @staticmethod
    def check_threshold(threshold: float) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"cascade threshold must be in (0, 1], got {threshold}")

    def answer(self, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
        """The outputs for ``inputs`` when the model is confident enough, else None."""
        label, probability = self.model.top(inputs)
        if probability < self.threshold:
            return None
        return dict(zip(self.fields, label, strict=True))

    def to_state(self) -> dict[str, Any]:
        return {"fields": self.fields, "threshold": self.threshold, "model": self.model.to_state()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Cascade:
        return cls(
            LabelModel.from_state(state["model"]), state["fields"], float(state["threshold"])
        )


class CascadeMixin(SavedExtra):
    """Answers confident calls from the label model (see the module docstring)."""

    key = STATE_KEY
    saved_as = Cascade
    cascade: Cascade | None = None

    def _shortcut(self, kwargs: Mapping[str, Any]) -> Any:
        if self.cascade is None:
            return None
        outputs = self.cascade.answer(kwargs)
        if outputs is None:
            return None
        import dspy

        if "reasoning" in self.signature.output_fields:  # type: ignore[attr-defined]  # Predict's
            outputs["reasoning"] = "Answered by the label model learned from labeled examples."
        return dspy.Prediction(**outputs)

    def forward(self, **kwargs: Any) -> Any:
        shortcut = self._shortcut(kwargs)
        return shortcut if shortcut is not None else super().forward(**kwargs)  # type: ignore[misc]

    async def aforward(self, **kwargs: Any) -> Any:
        shortcut = self._shortcut(kwargs)
        if shortcut is not None:
            return shortcut
        return await super().aforward(**kwargs)  # type: ignore[misc]  # the Predict after the mixin
