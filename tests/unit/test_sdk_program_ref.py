"""program_ref must import to a zero-argument program factory in another process."""

from __future__ import annotations

import dspy

from dspy_flywheel.sdk import build_program, dspy_worker
from tests.unit import program_ref_fixtures as fx


def test_decorator_syntax_points_at_build_program() -> None:
    ref = fx.Decorated.resolved_program_ref()
    assert ref == "tests.unit.program_ref_fixtures:Decorated.build_program"
    assert isinstance(build_program(ref), dspy.Module)


def test_function_call_form_points_at_the_class() -> None:
    ref = fx.WRAPPED.resolved_program_ref()
    assert ref == "tests.unit.program_ref_fixtures:Plain"
    assert isinstance(build_program(ref), fx.Plain)


def test_local_class_has_no_ref() -> None:
    class Local(dspy.Module):
        def forward(self, text: str) -> dspy.Prediction:
            return dspy.Prediction(label=text)

    assert dspy_worker("local")(Local).resolved_program_ref() is None
