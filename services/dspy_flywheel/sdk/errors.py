"""Errors raised by the worker SDK.

    WorkerError (Exception)                      retriable=False unless noted
    ├── WorkerConfigError (ValueError)           bad decorator / trigger / optimizer arguments
    ├── UnknownVersion (KeyError)                pin() of a version this instance never loaded
    └── ProgramRefused (ValueError)              a published program does not fit this worker
        ├── SignatureMismatch                    field names or order differ
        ├── CorruptProgram                       state JSON unreadable or does not load
        └── AdapterRefused                       its LoRA adapter cannot be served here (other
                                                 base model, corrupt file, not the embedded LM)

Failures of the platform (Kafka down, spool full) never raise into a worker call: they are
counted in ``worker.stats()`` and logged.
"""

from __future__ import annotations

from typing import ClassVar


class WorkerError(Exception):
    retriable: ClassVar[bool] = False


class WorkerConfigError(WorkerError, ValueError):
    pass


class UnknownVersion(WorkerError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown version"


class ProgramRefused(WorkerError, ValueError):
    pass


class SignatureMismatch(ProgramRefused):
    pass


class CorruptProgram(ProgramRefused):
    pass


class AdapterRefused(ProgramRefused):
    pass
