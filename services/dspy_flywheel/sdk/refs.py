"""Import paths (``"package.module:Qual.Name"``) for a worker's program and metric.

``TriggerConfig.program_ref`` / ``metric_ref`` carry them so the optimizer service can rebuild
the worker's program (``build_program``) and metric (``load_metric``) in its own process.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

import dspy

log = logging.getLogger(__name__)

Metric = Callable[..., Any]


def ref_of(obj: Any) -> str | None:
    """``module:qualname`` of a module-level object; None when another process can't import it."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or "<locals>" in qualname or "<lambda>" in qualname:
        return None
    if module == "__main__":
        return None
    return f"{module}:{qualname}"


def import_ref(ref: str) -> Any:
    """The object named by ``module:attr.path``."""
    module_name, sep, attr_path = ref.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"expected 'package.module:attr', got {ref!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


def build_program(ref: str) -> dspy.Module:
    """A fresh instance of the program behind ``ref`` (a worker, a Module class or a factory)."""
    target = import_ref(ref)
    build = getattr(target, "build_program", None)  # a @dspy_worker spec
    program = build() if callable(build) else target()
    if not isinstance(program, dspy.Module):
        raise TypeError(f"{ref} built a {type(program).__name__}, not a dspy.Module")
    return program


def load_metric(ref: str | None) -> Metric | None:
    """The metric behind ``ref``; None means the default exact match on output fields."""
    if ref is None:
        return None
    metric = import_ref(ref)
    if not callable(metric):
        raise TypeError(f"{ref} is not callable")
    return metric  # type: ignore[no-any-return]  # checked callable above
