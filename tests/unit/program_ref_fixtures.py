"""Module-level workers for test_sdk_program_ref (importable by reference)."""

from __future__ import annotations

import dspy

from dspy_flywheel.sdk import dspy_worker


class Plain(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("text -> label")

    def forward(self, text: str) -> dspy.Prediction:
        return self.predict(text=text)


WRAPPED = dspy_worker("plain")(Plain)


@dspy_worker("decorated")
class Decorated(Plain):
    pass
