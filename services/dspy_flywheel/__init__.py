"""dspy-flywheel: DSPy workers that improve themselves in production.

    from dspy_flywheel import dspy_worker, dspy_worker_optimized, DSPyAgent

The names below load lazily, so ``import dspy_flywheel.contracts`` (services, CLI) does not
pull in DSPy and the worker SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dspy_flywheel._lazy import lazy_exports

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
    "DSPyAgent", "Worker", "WorkerConfigError", "WorkerSettings", "WorkerSpec", "dspy_worker",
    "dspy_worker_optimized", "signature_of",
]  # fmt: skip


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
