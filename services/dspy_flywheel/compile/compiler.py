"""Compiling a program with a configured optimizer, and loading saved state into a new program.

``DSPyAgent`` and the optimizer's compile child both compile through ``compile_program``; both
load a saved or published state through ``load_state_into``, which checks field names first
(DSPy matches saved fields by position only) and restores retrieval indexes
(``compile.program_state.load_program_state``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from dspy_flywheel.compile.catalog import DSPyOptimizer, using_lm
from dspy_flywheel.compile.errors import IncompatibleProgram, OptimizerConfigError
from dspy_flywheel.compile.examples import to_examples
from dspy_flywheel.compile.program_state import load_program_state
from dspy_flywheel.compile.signature import input_fields, signature_of


def compile_program(
    program: Any,
    training_data: Sequence[Any],
    optimizer: DSPyOptimizer,
    *,
    valset: Sequence[Any] | None = None,
    lm: Any = None,
) -> Any:
    """Compile ``program`` on ``training_data`` with ``optimizer``; returns the optimized program.

    Items may be any shape ``examples.to_example`` accepts. ``valset`` goes to optimizers that
    score candidates and is ignored by the others.
    """
    keys = input_fields(signature_of(program))
    trainset = to_examples(training_data, keys)
    if not trainset:
        raise OptimizerConfigError("training_data is empty")
    kwargs = dict(optimizer.compile_kwargs)
    if optimizer.uses_valset and valset is not None:
        kwargs["valset"] = to_examples(valset, keys)
    if optimizer.teleprompter.__class__.__name__ == "MIPROv2":
        _fit_minibatch(kwargs, trainset)
    with using_lm(lm):
        if optimizer.teacher is not None or optimizer.name == "BootstrapFinetune":
            program, kwargs = _finetune_inputs(program, trainset, optimizer, kwargs, lm)
        return optimizer.teleprompter.compile(program, trainset=trainset, **kwargs)


def _finetune_inputs(
    program: Any, trainset: list[Any], optimizer: DSPyOptimizer, kwargs: dict[str, Any], lm: Any
) -> tuple[Any, dict[str, Any]]:
    """BootstrapFinetune trains the LM its student's predictors name: a copy of ``program`` with
    every predictor on ``lm`` (or the configured one), and the teacher its settings ask for."""
    import dspy

    from dspy_flywheel.compile.catalog import optimizer_class

    target = lm if lm is not None else dspy.settings.lm
    ready = getattr(getattr(target, "provider", None), "ready", None)
    if callable(ready):
        ready()  # e.g. the training stack is installed: fail before bootstrapping any trace
    student = program.deepcopy()
    student.set_lm(target)
    if optimizer.teacher is not None and "teacher" not in kwargs:
        strategy, demos = optimizer.teacher
        teacher = optimizer_class(strategy)(max_labeled_demos=demos).compile(
            student.deepcopy(), trainset=trainset
        )
        teacher.set_lm(target)
        kwargs = {**kwargs, "teacher": teacher}
    return student, kwargs


def load_state_into(state: dict[str, Any], signature: dict[str, Any], template: Any) -> Any:
    """A deep copy of ``template`` with ``state`` loaded, after checking field names match."""
    own = signature_of(template)
    if own != signature:
        raise IncompatibleProgram(
            f"saved program signature {signature} does not match the program's {own}"
        )
    return load_program_state(copy.deepcopy(template), state)


def _fit_minibatch(kwargs: dict[str, Any], trainset: list[Any]) -> None:
    """MIPROv2 refuses a minibatch larger than the valset, and one as large as the valset scores
    every trial on all of it; below twice DSPy's default (35) a trial scores half the valset and
    the best candidates get MIPROv2's periodic full evaluations."""
    valset = kwargs.get("valset")
    size = len(valset) if valset is not None else max(1, int(len(trainset) * 0.8))
    if kwargs.get("minibatch", True) and "minibatch_size" not in kwargs and size < 70:
        kwargs["minibatch_size"] = max(1, size // 2)
