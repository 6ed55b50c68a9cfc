"""Errors of the CPU fine-tuning path (``dspy_flywheel.finetune``).

FinetuneError (CompileError)               retriable=False
├── TrainingStackMissing                   torch / transformers / peft / gguf not installed
├── TrainingBudgetExceeded                 wall time or memory budget hit mid-training
├── TrainingCancelled                      the job was cancelled
├── TrainingFailed                         the trainer exited with an error
└── AdapterError                           an adapter cannot be served
    ├── CorruptAdapter                     hash/size differ, truncated or not a LoRA GGUF
    └── BaseModelMismatch                  trained on another base model than this engine's

They derive from ``compile.errors.CompileError``, so the optimizer's compile child reports them
as configuration errors and the job ends ``failed`` with the message; the serving program is
never touched.
"""

from __future__ import annotations

from dspy_flywheel.compile.errors import CompileError


class FinetuneError(CompileError):
    pass


class TrainingStackMissing(FinetuneError):
    pass


class TrainingBudgetExceeded(FinetuneError):
    pass


class TrainingCancelled(FinetuneError):
    pass


class TrainingFailed(FinetuneError):
    pass


class AdapterError(FinetuneError):
    pass


class CorruptAdapter(AdapterError):
    pass


class BaseModelMismatch(AdapterError):
    pass
