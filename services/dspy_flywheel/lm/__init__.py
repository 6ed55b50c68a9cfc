"""The LM every service and the SDK use: embedded llama.cpp (default) or any DSPy model string.

    lm = build_lm()                  # from FLYWHEEL_LM / FLYWHEEL_LM_* (see settings.py)
    configure_lm(lm)                 # dspy.configure with the flywheel's InlineChatAdapter
    before = engine_stats(lm)
    ...
    spent = engine_stats(lm) - before    # calls, prompt_tokens, completion_tokens, errors

Tests use ``make_lm(FakeEngine(responder))``.
"""

from dspy_flywheel.lm._convert import ChatMessage
from dspy_flywheel.lm.adapter import InlineChatAdapter
from dspy_flywheel.lm.embedded import EmbeddedConfig, EmbeddedEngine, load_engine
from dspy_flywheel.lm.errors import LMSetupError, ModelNotFoundError, UnknownModelError
from dspy_flywheel.lm.factory import (
    AsyncEngineAdapter,
    CountingLM,
    build_lm,
    configure_lm,
    engine_counters,
    engine_stats,
    make_lm,
    reset_engine_stats,
    reuse_identical_calls,
)
from dspy_flywheel.lm.settings import EMBEDDED, KNOWN_MODELS, LMSettings
from dspy_flywheel.lm.stats import EngineCounters, EngineStats

__all__ = [
    "EMBEDDED",
    "KNOWN_MODELS",
    "AsyncEngineAdapter",
    "ChatMessage",
    "CountingLM",
    "EmbeddedConfig",
    "EmbeddedEngine",
    "EngineCounters",
    "EngineStats",
    "InlineChatAdapter",
    "LMSettings",
    "LMSetupError",
    "ModelNotFoundError",
    "UnknownModelError",
    "build_lm",
    "configure_lm",
    "engine_counters",
    "engine_stats",
    "load_engine",
    "make_lm",
    "reset_engine_stats",
    "reuse_identical_calls",
]
