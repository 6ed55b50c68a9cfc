"""Serving an adapter: which engine config runs ``<base>@lora-<sha256>``, after the checks.

A worker (or the compile child evaluating a candidate) serves an adapter only when its own base
model is the one the adapter was trained on (sha256 compared) and the stored file re-hashes to
the name; otherwise it raises, and whatever served before keeps serving.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dspy_flywheel.finetune.artifacts import (
    AdapterArtifact,
    adapter_sha,
    base_model_sha256,
    describe,
    fetch,
)
from dspy_flywheel.finetune.errors import AdapterError, BaseModelMismatch, CorruptAdapter

if TYPE_CHECKING:
    from dspy_flywheel.lm.embedded import EmbeddedConfig


def check_base(artifact: AdapterArtifact, model_path: str) -> None:
    """Raise BaseModelMismatch unless ``model_path`` is the adapter's base model."""
    own = base_model_sha256(Path(model_path))
    if own != artifact.base_sha256:
        raise BaseModelMismatch(
            f"adapter {artifact.sha256[:12]} was trained on {artifact.base_model} "
            f"(sha256 {artifact.base_sha256[:12]}), but this engine serves "
            f"{Path(model_path).stem} (sha256 {own[:12]}); refusing it"
        )


def adapter_engine_config(
    base: EmbeddedConfig, model: str, artifact: AdapterArtifact | None = None
) -> EmbeddedConfig:
    """``base`` with the verified adapter named by ``model`` applied."""
    sha = adapter_sha(model)
    if sha is None:
        raise CorruptAdapter(f"{model!r} names no adapter")
    artifact = artifact or describe(sha)
    if artifact.sha256 != sha:
        raise CorruptAdapter(f"{model!r} names adapter {sha[:12]}, not {artifact.sha256[:12]}")
    check_base(artifact, base.model_path)
    return replace(base, lora_path=str(fetch(artifact)))


def program_adapter(program: Any) -> AdapterArtifact | None:
    """The adapter ``program``'s predictors serve (None: none); one adapter per program."""
    shas = {
        sha
        for _, predictor in program.named_predictors()
        if (sha := adapter_sha(str(getattr(predictor.lm, "model", "") or ""))) is not None
    }
    if len(shas) > 1:
        raise AdapterError(f"a program version carries one adapter, this one names {len(shas)}")
    return describe(shas.pop()) if shas else None
