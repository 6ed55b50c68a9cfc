"""A worker's own LM serving a LoRA adapter: a copy of it whose engine loads the adapter.

Kept apart from ``serving`` (which ``lm.embedded`` imports) because it imports the engine.
"""

from __future__ import annotations

from typing import Any

from dspy_flywheel.finetune.artifacts import AdapterArtifact, adapter_model
from dspy_flywheel.finetune.errors import AdapterError
from dspy_flywheel.finetune.serving import adapter_engine_config
from dspy_flywheel.lm.embedded import EmbeddedConfig, load_engine


def adapter_lm(lm: Any, artifact: AdapterArtifact) -> Any:
    """A copy of the worker's ``lm`` serving ``artifact``, its engine loaded now (so a swap that
    follows never waits on a model load). Raises AdapterError when it cannot."""
    config = getattr(getattr(lm, "engine", None), "config", None)
    if not isinstance(config, EmbeddedConfig):  # the in-process or the shared server's engine
        served = getattr(lm, "model", lm)
        raise AdapterError(f"a LoRA adapter needs the embedded engine; this LM is {served!r}")
    model = adapter_model(str(lm.model), artifact.sha256)
    load_engine(adapter_engine_config(config, model, artifact))
    return lm.copy(model=model)
