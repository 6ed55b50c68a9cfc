"""The LM every service and the SDK use: embedded llama.cpp (default) or any DSPy model string.

    lm = build_lm()                  # from FLYWHEEL_LM / FLYWHEEL_LM_* (see settings.py)
    configure_lm(lm)                 # dspy.configure with the flywheel's InlineChatAdapter
    before = engine_stats(lm)
    ...
    spent = engine_stats(lm) - before    # calls, prompt_tokens, completion_tokens, errors

Tests use ``make_lm(FakeEngine(responder))``.
"""

from dspy_flywheel.lm.adapter import InlineChatAdapter
from dspy_flywheel.lm.embedded import EmbeddedConfig, EmbeddedEngine, load_engine
from dspy_flywheel.lm.errors import ModelNotFoundError, UnknownModelError
from dspy_flywheel.lm.factory import (
    CountingLM,
    build_lm,
    configure_lm,
    engine_stats,
    make_lm,
    reset_engine_stats,
    reuse_identical_calls,
)
from dspy_flywheel.lm.settings import KNOWN_MODELS, LMSettings
from dspy_flywheel.lm.stats import EngineStats

__all__ = [
    "KNOWN_MODELS",
    "CountingLM",
    "EmbeddedConfig",
    "EmbeddedEngine",
    "EngineStats",
    "InlineChatAdapter",
    "LMSettings",
    "ModelNotFoundError",
    "UnknownModelError",
    "build_lm",
    "configure_lm",
    "engine_stats",
    "load_engine",
    "make_lm",
    "reset_engine_stats",
    "reuse_identical_calls",
]
