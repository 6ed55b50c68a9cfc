"""dspy-flywheel: DSPy workers that improve themselves in production.

    from dspy_flywheel import dspy_worker, dspy_worker_optimized, DSPyAgent

The names below load lazily, so ``import dspy_flywheel.contracts`` (services, CLI) does not
pull in DSPy and the worker SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dspy_flywheel.sdk import (
        Worker,
        WorkerConfigError,
        WorkerSettings,
        WorkerSpec,
        dspy_worker,
        dspy_worker_optimized,
        signature_of,
    )
    from dspy_flywheel.sdk.agent import DSPyAgent

_EXPORTS = {
    "DSPyAgent": "dspy_flywheel.sdk.agent",
    "Worker": "dspy_flywheel.sdk",
    "WorkerConfigError": "dspy_flywheel.sdk",
    "WorkerSettings": "dspy_flywheel.sdk",
    "WorkerSpec": "dspy_flywheel.sdk",
    "dspy_worker": "dspy_flywheel.sdk",
    "dspy_worker_optimized": "dspy_flywheel.sdk",
    "signature_of": "dspy_flywheel.sdk",
}

__all__ = [
    "DSPyAgent",
    "Worker",
    "WorkerConfigError",
    "WorkerSettings",
    "WorkerSpec",
    "dspy_worker",
    "dspy_worker_optimized",
    "signature_of",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dspy_flywheel' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
