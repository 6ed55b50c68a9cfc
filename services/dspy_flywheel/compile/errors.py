"""Errors of the compile layer (``DSPyAgent``, the optimizer catalog, references, programs).

CompileError (RuntimeError)                 retriable=False
├── OptimizerConfigError (ValueError)       unknown optimizer, bad parameter, LM can't fine-tune
├── RefError (ImportError)                  a ``module:attr`` reference cannot be loaded, or
│                                           names the wrong kind of object
├── ProgramNotFound (LookupError)           no saved program under that id
└── IncompatibleProgram                     saved signature differs from the program's

The optimizer service's own errors (``optimizer.errors.OptimizerError``) derive from
``CompileError``, so one ``except CompileError`` covers both.
"""

from __future__ import annotations

from typing import ClassVar


class CompileError(RuntimeError):
    retriable: ClassVar[bool] = False


class OptimizerConfigError(CompileError, ValueError):
    pass


class RefError(CompileError, ImportError):
    pass


class ProgramNotFound(CompileError, LookupError):
    pass


class IncompatibleProgram(CompileError):
    pass
