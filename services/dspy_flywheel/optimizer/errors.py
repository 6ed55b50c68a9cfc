"""Errors of the optimizer service (the compile layer's are in ``compile.errors``).

CompileError (RuntimeError)                 see ``dspy_flywheel.compile.errors``
└── OptimizerError                          retriable=False
    └── DatasetTooSmall                     fewer examples than the configured minimum
"""

from __future__ import annotations

from dspy_flywheel.compile.errors import CompileError


class OptimizerError(CompileError):
    pass


class DatasetTooSmall(OptimizerError):
    def __init__(self, found: int, minimum: int) -> None:
        self.found = found
        self.minimum = minimum
        super().__init__(f"dataset too small: {found} usable examples, at least {minimum} needed")
