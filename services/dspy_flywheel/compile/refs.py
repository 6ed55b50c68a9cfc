"""``module.path:attr`` references to programs, metrics and LM factories: made and loaded.

``ref_of`` names a module-level object so another process (the optimizer's compile child) can
import it; ``load_ref`` imports it back. Every failure to load is a ``RefError`` that names the
reference and what was wrong with it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dspy_flywheel.compile.errors import RefError

if TYPE_CHECKING:
    import dspy

Metric = Callable[..., Any]


def ref_of(obj: Any) -> str | None:
    """``module:qualname`` of a module-level object; None when another process can't import it."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or module == "__main__" or not qualname:
        return None
    return None if "<locals>" in qualname or "<lambda>" in qualname else f"{module}:{qualname}"


def load_ref(ref: str) -> Any:
    """The object named by ``"package.module:attr.sub"``."""
    module_name, sep, attr_path = ref.partition(":")
    if not sep or not module_name or not attr_path:
        raise RefError(f"reference {ref!r} must look like 'package.module:attr'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise RefError(f"cannot import module {module_name!r} of {ref!r}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise RefError(f"{ref!r}: {module_name} has no attribute {attr_path!r}") from exc
    return obj


def build_program(ref: str) -> dspy.Module:
    """A fresh ``dspy.Module`` from a class, zero-argument factory or ``@dspy_worker`` spec."""
    import dspy

    target = load_ref(ref)
    if isinstance(target, dspy.Module):
        raise RefError(
            f"{ref!r} is a module instance; point at its class or a zero-argument factory"
        )
    if not callable(target):
        raise RefError(f"{ref!r} is not callable")
    build = getattr(target, "build_program", None)  # a @dspy_worker spec names its program
    program = build() if callable(build) else target()
    if not isinstance(program, dspy.Module):
        raise RefError(f"{ref!r} returned {type(program).__name__}, not a dspy.Module")
    return program


def load_metric(ref: str | None) -> Metric | None:
    """The metric named by ``ref``; None when there is no ref (callers use their default)."""
    if not ref:
        return None
    metric = load_ref(ref)
    if not callable(metric):
        raise RefError(f"metric {ref!r} is not callable")
    return metric  # type: ignore[no-any-return]  # load_ref returns Any; checked callable
