"""Import ``module.path:attr`` references (programs, metrics, LM factories)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from dspy_flywheel.optimizer.errors import ProgramImportError


def load_ref(ref: str) -> Any:
    """The object named by ``"package.module:attr.sub"``."""
    module_name, sep, attr_path = ref.partition(":")
    if not sep or not module_name or not attr_path:
        raise ProgramImportError(f"reference {ref!r} must look like 'package.module:attr'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ProgramImportError(f"cannot import module {module_name!r} of {ref!r}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ProgramImportError(
                f"{ref!r}: {module_name} has no attribute {attr_path!r}"
            ) from exc
    return obj


def build_program(ref: str) -> Any:
    """Instantiate a ``dspy.Module`` from a class, zero-argument factory or ``@dspy_worker``."""
    import dspy

    target = load_ref(ref)
    if isinstance(target, dspy.Module):
        raise ProgramImportError(
            f"{ref!r} is a module instance; point at its class or a zero-argument factory"
        )
    if not callable(target):
        raise ProgramImportError(f"{ref!r} is not callable")
    build = getattr(target, "build_program", None)  # a @dspy_worker spec names its program
    program = build() if callable(build) else target()
    if not isinstance(program, dspy.Module):
        raise ProgramImportError(f"{ref!r} returned {type(program).__name__}, not a dspy.Module")
    return program


def load_metric(ref: str | None) -> Callable[..., Any]:
    """The metric named by ``ref``, or normalized exact match when None."""
    from dspy_flywheel.optimizer.metrics import exact_match

    if not ref:
        return exact_match
    metric = load_ref(ref)
    if not callable(metric):
        raise ProgramImportError(f"metric {ref!r} is not callable")
    return metric  # type: ignore[no-any-return]  # load_ref returns Any
