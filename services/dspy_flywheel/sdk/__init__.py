"""The worker SDK: what a worker author imports.

    from dspy_flywheel import dspy_worker, dspy_worker_optimized

Pieces: ``decorators`` (the two decorators, ``WorkerSpec``), ``worker`` (the running ``Worker``),
``emitter``/``delivery``/``spool`` (events off the call path, on disk when Kafka is away),
``programs``/``reloader`` (hot reload with atomic swaps), ``signature`` (``signature_of``, shared
with the optimizer), ``refs`` (``program_ref``/``metric_ref`` import paths), ``triggers`` and
``config_sync`` (the optimization config on the trigger-config topic), ``feedback``, ``usage``.
"""

from dspy_flywheel.sdk.decorators import (
    FunctionModule,
    WorkerSpec,
    dspy_worker,
    dspy_worker_optimized,
)
from dspy_flywheel.sdk.errors import (
    CorruptProgram,
    ProgramRefused,
    SignatureMismatch,
    UnknownVersion,
    WorkerConfigError,
    WorkerError,
)
from dspy_flywheel.sdk.feedback import exact_match
from dspy_flywheel.sdk.programs import CODE, Outcome
from dspy_flywheel.sdk.refs import build_program, import_ref, load_metric, ref_of
from dspy_flywheel.sdk.settings import WorkerSettings
from dspy_flywheel.sdk.signature import SignatureMap, signature_mismatch, signature_of
from dspy_flywheel.sdk.triggers import MIPRO_AUTO, OPTIMIZERS, POLICIES, OptimizationConfig
from dspy_flywheel.sdk.worker import SPAN_NAME, Worker

__all__ = [
    "CODE",
    "MIPRO_AUTO",
    "OPTIMIZERS",
    "POLICIES",
    "SPAN_NAME",
    "CorruptProgram",
    "FunctionModule",
    "OptimizationConfig",
    "Outcome",
    "ProgramRefused",
    "SignatureMap",
    "SignatureMismatch",
    "UnknownVersion",
    "Worker",
    "WorkerConfigError",
    "WorkerError",
    "WorkerSettings",
    "WorkerSpec",
    "build_program",
    "dspy_worker",
    "dspy_worker_optimized",
    "exact_match",
    "import_ref",
    "load_metric",
    "ref_of",
    "signature_mismatch",
    "signature_of",
]
