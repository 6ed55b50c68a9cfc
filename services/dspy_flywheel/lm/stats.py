"""Engine-level LM call and token counters.

Counted where the model runs, not from ``lm.history``, which undercounts during optimization
(copies, threads, disabled history). Counters are shared, not copied, when an LM is deep-copied,
so every copy of an LM reports into the same numbers.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A snapshot of an engine's counters. ``after - before`` measures a span of work."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __sub__(self, other: EngineStats) -> EngineStats:
        return EngineStats(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "total_tokens": self.total_tokens}


class EngineCounters:
    """Thread-safe running totals; ``snapshot()`` reads them, ``reset()`` zeroes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = EngineStats()

    def record_call(self, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            s = self._stats
            self._stats = replace(
                s,
                calls=s.calls + 1,
                prompt_tokens=s.prompt_tokens + prompt_tokens,
                completion_tokens=s.completion_tokens + completion_tokens,
            )

    def record_error(self) -> None:
        with self._lock:
            self._stats = replace(self._stats, errors=self._stats.errors + 1)

    def snapshot(self) -> EngineStats:
        with self._lock:
            return self._stats

    def reset(self) -> EngineStats:
        """Zero the counters and return what they held."""
        with self._lock:
            previous, self._stats = self._stats, EngineStats()
            return previous

    def __deepcopy__(self, memo: dict[int, Any]) -> EngineCounters:
        return self  # shared on purpose: copies of an LM count into one place

    def __copy__(self) -> EngineCounters:
        return self

    def __reduce__(self) -> tuple[type[EngineCounters], tuple[()]]:
        return (EngineCounters, ())  # another process starts from zero
