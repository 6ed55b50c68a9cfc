"""LM calls and tokens of one worker call, counted through DSPy's usage-tracker hook.

DSPy reports every finished LM call (not cache hits) to ``settings.usage_tracker``. A worker call
installs its own ``CallUsage`` in the context (a contextvar, so concurrent calls on threads or
tasks never mix) and reads the totals afterwards. A tracker the caller already had keeps getting
every entry.
"""

from __future__ import annotations

import threading
from contextvars import Token
from typing import Any

from dspy.dsp.utils.settings import main_thread_config, thread_local_overrides
from dspy.dsp.utils.utils import dotdict
from dspy.utils.usage_tracker import UsageTracker


class CallUsage(UsageTracker):  # type: ignore[misc]  # dspy is untyped
    """Counts LM calls and tokens of one worker call; passes entries on to the caller's tracker.

    ``wanted_by_user``: the user asked DSPy for per-prediction usage (``track_usage=True``).
    """

    def __init__(self, parent: UsageTracker | None, wanted_by_user: bool) -> None:
        super().__init__()
        self.parent = parent
        self.wanted_by_user = wanted_by_user
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict[int, Any]) -> CallUsage:
        # dspy.Parallel deep-copies the tracker per thread (and drops the copies): share it,
        # so LM calls on those threads still count for this worker call.
        return self

    def add_usage(self, lm: str, usage_entry: dict[str, Any]) -> None:
        with self._lock:  # dspy.Parallel inside the program reports from several threads
            self.calls += 1
            self.prompt_tokens += _as_int(usage_entry.get("prompt_tokens"))
            self.completion_tokens += _as_int(usage_entry.get("completion_tokens"))
        if self.wanted_by_user:
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
    parent = _setting(overrides, "usage_tracker")
    tracker = CallUsage(parent, bool(_setting(overrides, "track_usage")))
    scoped = dotdict(overrides)
    scoped["usage_tracker"] = tracker
    return tracker, thread_local_overrides.set(scoped)


def end(token: Token[dotdict]) -> None:
    thread_local_overrides.reset(token)


def _setting(overrides: dotdict, name: str) -> Any:
    """``dspy.settings.<name>`` without the attribute machinery (this runs on every call)."""
    return overrides[name] if name in overrides else main_thread_config.get(name)
