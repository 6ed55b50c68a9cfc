"""Was an execution right? From a score, or from a label compared with the execution's outputs.

The rules are ``compile.judge``'s, the same the optimizer's holdout gate and the SDK use:

- A score (feedback ``score``, else the execution's ``metric_score``) is correct when >= 0.5.
- A label is read against the execution's outputs and compared field by field, normalized
  (case-folded, whitespace collapsed, surrounding quotes and punctuation stripped:
  ``"billing."`` matches ``billing``). A failed execution (no outputs) is incorrect; a label
  that cannot be read for the outputs (or outputs that are not a JSON object) is not judged.

Execution outcomes are kept by execution id in a bounded TTL cache (``Expiring``) because
feedback arrives on its own topic, often later; label-only feedback that arrives before its
execution waits in another one.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from dspy_flywheel.compile.judge import label_verdict

V = TypeVar("V")


def label_matches(label: str, outputs_json: str | None) -> bool | None:
    """True/False when the label can be judged against the outputs; None when it cannot."""
    if outputs_json is None:
        return False
    try:
        outputs = json.loads(outputs_json)
    except json.JSONDecodeError:
        return None
    return label_verdict(label, outputs) if isinstance(outputs, dict) else None


@dataclass(frozen=True)
class ExecutionOutcome:
    worker_id: str
    outputs_json: str | None
    success: bool
    metric_score: float | None
    timestamp_ms: int
    version: int | None = None  # program version that served the call
    traceparent: str | None = None  # the call's trace (the decision span links to it)


class Expiring(Generic[V]):
    """Values by key: at most ``max_entries`` (oldest dropped first), each kept ``ttl_s``
    seconds. ``expired`` counts the values dropped before anyone took them."""

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self._items: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._max, self._ttl = max_entries, ttl_s
        self.expired = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: str, value: V, now: float | None = None) -> None:
        now = _now(now)
        self._items[key] = (now + self._ttl, value)
        self._items.move_to_end(key)
        self.expire(now)
        while len(self._items) > self._max:
            self._items.popitem(last=False)
            self.expired += 1

    def get(self, key: str, now: float | None = None) -> V | None:
        """The value, while it has not expired."""
        item = self._items.get(key)
        return None if item is None or item[0] <= _now(now) else item[1]

    def take(self, key: str, now: float | None = None) -> V | None:
        """The value, removed (None when it has expired)."""
        item = self._items.pop(key, None)
        return None if item is None or item[0] <= _now(now) else item[1]

    def expire(self, now: float | None = None) -> int:
        """Drop the expired values; how many."""
        now, dropped = _now(now), 0
        while self._items and next(iter(self._items.values()))[0] <= now:
            self._items.popitem(last=False)
            dropped += 1
        self.expired += dropped
        return dropped


def _now(now: float | None) -> float:
    return time.monotonic() if now is None else now


@dataclass(frozen=True)
class LabeledFeedback:
    execution_id: str
    worker_id: str
    label: str
    timestamp_ms: int
    traceparent: str | None
