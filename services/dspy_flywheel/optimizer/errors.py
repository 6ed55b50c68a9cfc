"""Errors of the optimizer and of ``DSPyAgent``.

OptimizerError (RuntimeError)               retriable=False unless noted
├── OptimizerConfigError                    unknown optimizer, bad parameter, LM can't fine-tune
├── ProgramImportError                      program_ref / metric_ref cannot be imported
├── DatasetTooSmall                         fewer examples than the configured minimum
├── ProgramNotFound                         no saved program under that id
├── IncompatibleProgram                     saved signature differs from the program's
└── JobFailure                              the compile child failed; ``kind`` says how
    (kind: error | timeout | memory | budget | cancelled | crashed | orphaned)
"""

from __future__ import annotations

from typing import ClassVar


class OptimizerError(RuntimeError):
    retriable: ClassVar[bool] = False


class OptimizerConfigError(OptimizerError, ValueError):
    pass


class ProgramImportError(OptimizerError):
    pass


class DatasetTooSmall(OptimizerError):
    def __init__(self, found: int, minimum: int, detail: str = "") -> None:
        self.found = found
        self.minimum = minimum
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"dataset too small: {found} usable examples, at least {minimum} needed{extra}"
        )


class ProgramNotFound(OptimizerError, LookupError):
    pass


class IncompatibleProgram(OptimizerError):
    pass


class JobFailure(OptimizerError):
    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)
