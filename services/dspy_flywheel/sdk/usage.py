"""LM calls and tokens of one worker call, counted through DSPy's usage-tracker hook.

DSPy reports every finished LM call (not cache hits) to ``settings.usage_tracker``. A worker call
installs its own ``CallUsage`` in the context (a contextvar, so concurrent calls on threads or
tasks never mix) and reads the totals afterwards. A tracker the caller already had keeps getting
every entry.
"""

from __future__ import annotations

from contextvars import Token
from typing import Any

from dspy.dsp.utils.settings import settings, thread_local_overrides
from dspy.dsp.utils.utils import dotdict
from dspy.utils.usage_tracker import UsageTracker


class CallUsage(UsageTracker):
    __slots__ = ("calls", "completion_tokens", "parent", "prompt_tokens")

    def __init__(self, parent: UsageTracker | None) -> None:
        super().__init__()
        self.parent = parent
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def add_usage(self, lm: str, usage_entry: dict[str, Any]) -> None:
        self.calls += 1
        self.prompt_tokens += _as_int(usage_entry.get("prompt_tokens"))
        self.completion_tokens += _as_int(usage_entry.get("completion_tokens"))
        super().add_usage(lm, usage_entry)
        if self.parent is not None:
            self.parent.add_usage(lm, usage_entry)


def _as_int(value: Any) -> int:
    return value if isinstance(value, int) else int(value or 0)


def begin() -> tuple[CallUsage, Token[dotdict]]:
    """Install a fresh tracker for this call; pass the token to ``end``.

    Same effect as ``dspy.context(usage_tracker=...)`` without copying the whole global
    config on every call (only the thread's overrides, usually empty, are copied).
    """
    overrides = thread_local_overrides.get()
    tracker = CallUsage(overrides.get("usage_tracker") or settings.usage_tracker)
    scoped = dotdict(overrides)
    scoped["usage_tracker"] = tracker
    return tracker, thread_local_overrides.set(scoped)


def end(token: Token[dotdict]) -> None:
    thread_local_overrides.reset(token)


def tracking_requested() -> bool:
    """Whether the user asked DSPy for per-prediction usage (``track_usage=True``)."""
    return bool(settings.track_usage)
