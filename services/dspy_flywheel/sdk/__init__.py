"""The worker SDK: what a worker author imports.

    from dspy_flywheel import dspy_worker, dspy_worker_optimized

Pieces:

* ``decorators``: the two decorators and ``WorkerSpec`` (what they return); ``worker``: the
  running ``Worker`` (call paths, feedback, pin / unpin / rollback, stats, close);
  ``runtime``: its IO thread, spool directory and background tasks.
* events off the call path: ``emitter`` (in-memory queue, pump), ``delivery`` + ``batches``
  (idempotent producer), ``spool`` (on disk while Kafka is away), ``events`` (the
  ExecutionRecorded / FeedbackRecorded / ProgramAcknowledged events a worker emits),
  ``tracing`` (span per call, traceparent), ``usage`` (LM calls and tokens per call).
* programs in: ``programs`` (checks, atomic swaps, history), ``reloader`` (follows
  program-updated through ``bus.consumer``); signatures (``signature_of``) come from the
  ``compile`` layer.
* optimization config: ``triggers`` (validation, TriggerConfig), ``config_sync`` (precedence on
  the compacted topic), ``feedback`` (labels and scores); ``program_ref`` / ``metric_ref`` are
  made and loaded by ``compile.refs``. ``agent``: ``DSPyAgent`` (local compile, save, load).
"""

from dspy_flywheel.compile.catalog import MIPRO_AUTO
from dspy_flywheel.compile.catalog import OPTIMIZER_CLASSES as OPTIMIZERS
from dspy_flywheel.compile.judge import exact_match
from dspy_flywheel.compile.refs import build_program, load_metric, load_ref, ref_of
from dspy_flywheel.compile.signature import SignatureMap, signature_mismatch, signature_of
from dspy_flywheel.contracts.policies import POLICIES
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
from dspy_flywheel.sdk.programs import CODE, Outcome
from dspy_flywheel.sdk.settings import WorkerSettings
from dspy_flywheel.sdk.tracing import SPAN_NAME
from dspy_flywheel.sdk.triggers import OptimizationConfig
from dspy_flywheel.sdk.worker import Worker

__all__ = [
    "CODE", "MIPRO_AUTO", "OPTIMIZERS", "POLICIES", "SPAN_NAME", "CorruptProgram", "FunctionModule",
    "OptimizationConfig", "Outcome", "ProgramRefused", "SignatureMap", "SignatureMismatch",
    "UnknownVersion", "Worker", "WorkerConfigError", "WorkerError", "WorkerSettings", "WorkerSpec",
    "build_program", "dspy_worker", "dspy_worker_optimized", "exact_match", "load_metric",
    "load_ref", "ref_of", "signature_mismatch", "signature_of",
]  # fmt: skip
