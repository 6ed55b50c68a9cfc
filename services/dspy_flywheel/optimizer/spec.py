"""What the optimizer hands its compile child, and the messages the child sends back.

The parent writes a ``JobSpec`` as JSON to a file; the child writes one JSON object per line to
its report stream (its original stdout): ``phase``, ``progress``, ``trial``, ``result`` or
``error``. The candidate program goes to ``result_path`` (it can be large).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

# Child exit codes the parent maps to a failure kind.
EXIT_ERROR: Final = 1
EXIT_BUDGET: Final = 3
EXIT_MEMORY: Final = 4
EXIT_ORPHANED: Final = 5


@dataclass(frozen=True)
class DataRow:
    """One example as the child sees it (decrypted by the parent)."""

    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None = None  # what the worker answered
    label: Any = None
    program_version: str | None = None  # the version that answered (None: the code's program)
    has_label: bool = True  # False: ``label`` is only the stored answer (no feedback came)


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    worker_id: str
    optimizer: str
    program_ref: str
    result_path: str
    params: dict[str, Any] = field(default_factory=dict)
    metric_ref: str | None = None
    lm_ref: str | None = None
    current_state: dict[str, Any] | None = None
    current_version: int | None = None
    current_signature: dict[str, Any] | None = None
    train: list[DataRow] = field(default_factory=list)
    val: list[DataRow] = field(default_factory=list)
    holdout: list[DataRow] = field(default_factory=list)
    max_lm_calls: int | None = None
    max_tokens: int | None = None
    memory_mb: int | None = None
    num_threads: int = 1
    report_interval_s: float = 0.5
    reuse_served: bool = True

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> JobSpec:
        raw = json.loads(path.read_text())
        for split in ("train", "val", "holdout"):
            raw[split] = [DataRow(**row) for row in raw.get(split, [])]
        return cls(**raw)


@dataclass(frozen=True)
class CompileResult:
    """What a successful child leaves in ``result_path``."""

    state: dict[str, Any]
    signature: dict[str, Any]
    current_score: float
    candidate_score: float
    current_errors: int
    candidate_errors: int
    holdout_size: int
    lm_calls: int
    tokens: int
    lm_errors: int
    cpu_s: float
    dropped_examples: int = 0
    current_source: str = "code"
    current_served: int = 0  # holdout answers of the current program taken as served, not re-asked
    peak_rss_mb: float | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)
    current_scores: list[float] = field(default_factory=list)  # per holdout example, paired
    candidate_scores: list[float] = field(default_factory=list)
    # {expected: {predicted: n}} on the holdout, when the label is a class (compile.confusion)
    current_confusion: dict[str, dict[str, int]] | None = None
    candidate_confusion: dict[str, dict[str, int]] | None = None
    # BootstrapFinetune: the candidate's LoRA adapter (finetune.AdapterArtifact as a dict)
    adapter: dict[str, Any] | None = None

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> CompileResult:
        return cls(**json.loads(path.read_text()))
