"""Was an execution right? From a score, or from a label compared with the execution's outputs.

The rules are ``compile.judge``'s, the same the optimizer's holdout gate and the SDK use:

- A score (feedback ``score``, else the execution's ``metric_score``) is correct when >= 0.5.
- A label is read against the execution's outputs and compared field by field, normalized
  (case-folded, whitespace collapsed, surrounding quotes and punctuation stripped:
  ``"billing."`` matches ``billing``). A failed execution (no outputs) is incorrect; a label
  that cannot be read for the outputs (or outputs that are not a JSON object) is not judged.

Execution outputs are kept in a bounded TTL cache because feedback arrives on its own topic,
often later; label-only feedback that arrives before its execution waits in ``PendingFeedback``.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass

from dspy_flywheel.compile.judge import label_verdict


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


class ExecutionCache:
    """Execution outcomes by execution id: at most ``max_entries``, each kept ``ttl_s`` seconds."""

    def __init__(self, max_entries: int = 100_000, ttl_s: float = 3600.0) -> None:
        self._items: OrderedDict[str, tuple[float, ExecutionOutcome]] = OrderedDict()
        self._max = max_entries
        self._ttl = ttl_s

    def __len__(self) -> int:
        return len(self._items)

    def put(self, execution_id: str, outcome: ExecutionOutcome, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._items[execution_id] = (now + self._ttl, outcome)
        self._items.move_to_end(execution_id)
        self._expire(now)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    def get(self, execution_id: str, now: float | None = None) -> ExecutionOutcome | None:
        now = time.monotonic() if now is None else now
        item = self._items.get(execution_id)
        if item is None or item[0] <= now:
            return None
        return item[1]

    def _expire(self, now: float) -> None:
        while self._items:
            expires, _ = next(iter(self._items.values()))
            if expires > now:
                break
            self._items.popitem(last=False)


@dataclass(frozen=True)
class LabeledFeedback:
    execution_id: str
    worker_id: str
    label: str
    timestamp_ms: int
    traceparent: str | None


class PendingFeedback:
    """Label-only feedback waiting for its execution; bounded, entries expire after ``ttl_s``."""

    def __init__(self, max_entries: int = 10_000, ttl_s: float = 600.0) -> None:
        self._items: OrderedDict[str, tuple[float, LabeledFeedback]] = OrderedDict()
        self._max = max_entries
        self._ttl = ttl_s
        self.expired = 0

    def __len__(self) -> int:
        return len(self._items)

    def park(self, feedback: LabeledFeedback, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._items[feedback.execution_id] = (now + self._ttl, feedback)
        self.expire(now)
        while len(self._items) > self._max:
            self._items.popitem(last=False)
            self.expired += 1

    def take(self, execution_id: str) -> LabeledFeedback | None:
        item = self._items.pop(execution_id, None)
        return item[1] if item else None

    def expire(self, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        dropped = 0
        while self._items:
            expires, _ = next(iter(self._items.values()))
            if expires > now:
                break
            self._items.popitem(last=False)
            dropped += 1
        self.expired += dropped
        return dropped
