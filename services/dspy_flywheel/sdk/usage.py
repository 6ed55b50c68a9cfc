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

_LOCK = threading.Lock()  # one add per LM call: a shared lock is never contended for long
_NO_ENTRIES: dict[str, list[dict[str, Any]]] = {}


class CallUsage(UsageTracker):  # type: ignore[misc]  # dspy is untyped
    """Counts LM calls and tokens of one worker call; passes entries on to the caller's tracker.

    ``wanted_by_user``: the user asked DSPy for per-prediction usage (``track_usage=True``);
    only then are entries kept (``usage_data``), as DSPy's own tracker keeps them.
    """

    def __init__(self, parent: UsageTracker | None, wanted_by_user: bool) -> None:
        if wanted_by_user:
            super().__init__()
        else:
            self.usage_data = _NO_ENTRIES  # read-only: get_total_tokens() sees no entries
        self.parent = parent
        self.wanted_by_user = wanted_by_user
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> CallUsage:
        # dspy.Parallel deep-copies the tracker per thread (and drops the copies): share it,
        # so LM calls on those threads still count for this worker call.
        return self

    def add_usage(self, lm: str, usage_entry: dict[str, Any]) -> None:
        with _LOCK:  # dspy.Parallel inside the program reports from several threads
            self.calls += 1
            self.prompt_tokens += _as_int(usage_entry.get("prompt_tokens"))
            self.completion_tokens += _as_int(usage_entry.get("completion_tokens"))
        if self.wanted_by_user:
            super().add_usage(lm, usage_entry)
        if self.parent is not None:
            self.parent.add_usage(lm, usage_entry)


def _as_int(value: Any) -> int:
    return value if isinstance(value, int) else int(value or 0)


class _Reusable(threading.local):
    """Per thread: one tracker and the overrides that install it, reused by every call made
    outside any ``dspy.context()`` (the usual case) while no other call of the thread (an
    interleaved async task) holds them. Saves building both on every call."""

    scoped: dotdict | None = None
    tracker: CallUsage | None = None
    busy = False


_reusable = _Reusable()


def begin() -> tuple[CallUsage, Token[dotdict]]:
    """Install this call's tracker (counts from zero); pass the token to ``end``.

    Same effect as ``dspy.context(usage_tracker=...)`` without copying the whole global
    config on every call (only the thread's overrides, usually empty, are copied).
    """
    overrides = thread_local_overrides.get()
    if overrides:
        parent, wanted = _setting(overrides, "usage_tracker"), _setting(overrides, "track_usage")
        scoped = dotdict(overrides)
    else:  # the usual case: no dspy.context() around the call
        parent, wanted = (
            main_thread_config.get("usage_tracker"),
            main_thread_config.get("track_usage"),
        )
        reusable = _reusable
        if not wanted and not reusable.busy:
            tracker = reusable.tracker
            if tracker is None or tracker.parent is not parent:
                tracker = reusable.tracker = CallUsage(parent, False)
                reusable.scoped = dotdict(usage_tracker=tracker)
            else:
                tracker.calls = tracker.prompt_tokens = tracker.completion_tokens = 0
            reusable.busy = True
            return tracker, thread_local_overrides.set(reusable.scoped)
        scoped = dotdict()
    tracker = CallUsage(parent, bool(wanted))
    scoped["usage_tracker"] = tracker
    return tracker, thread_local_overrides.set(scoped)


def end(token: Token[dotdict]) -> None:
    """Uninstall the call's tracker (its counts stay readable until this thread's next call)."""
    reusable = _reusable
    if reusable.busy and thread_local_overrides.get() is reusable.scoped:
        reusable.busy = False
    thread_local_overrides.reset(token)


def _setting(overrides: dotdict, name: str) -> Any:
    """``dspy.settings.<name>`` without the attribute machinery (this runs on every call)."""
    return overrides[name] if name in overrides else main_thread_config.get(name)
