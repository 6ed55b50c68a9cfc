"""Per-worker trigger state: the rolling window of labeled outcomes and the anti-storm memory.

Everything here serializes to JSON (``to_json``/``from_json``) so it can be persisted in
``trigger_state`` together with the consumed offsets.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

_FINISHED_KEPT = 16


@dataclass(frozen=True)
class Observation:
    execution_id: str
    timestamp_ms: int
    correct: bool


@dataclass(frozen=True)
class WindowStats:
    count: int
    correct: int
    oldest_ms: int | None
    newest_ms: int | None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.count if self.count else None


class RollingWindow:
    """The last ``size`` labeled outcomes; a later label for the same execution replaces it."""

    def __init__(self, observations: list[Observation] | None = None) -> None:
        self._items: deque[Observation] = deque(observations or [])

    def __len__(self) -> int:
        return len(self._items)

    def add(self, obs: Observation, size: int) -> bool:
        """Add or replace; return True when the execution was new to the window."""
        for i, old in enumerate(self._items):
            if old.execution_id == obs.execution_id:
                self._items[i] = Observation(old.execution_id, old.timestamp_ms, obs.correct)
                return False
        self._items.append(obs)
        self.trim(size)
        return True

    def trim(self, size: int) -> None:
        while len(self._items) > size:
            self._items.popleft()

    def clear(self) -> None:
        self._items.clear()

    def recent(self, size: int) -> list[Observation]:
        return list(self._items)[-size:]

    def stats(self, size: int, now_ms: int, window_seconds: int | None) -> WindowStats:
        """Outcomes among the last ``size`` and, when set, within ``window_seconds`` of now."""
        items = list(self._items)[-size:]
        if window_seconds is not None:
            since = now_ms - window_seconds * 1000
            items = [o for o in items if o.timestamp_ms >= since]
        return WindowStats(
            count=len(items),
            correct=sum(o.correct for o in items),
            oldest_ms=min((o.timestamp_ms for o in items), default=None),
            newest_ms=max((o.timestamp_ms for o in items), default=None),
        )

    def to_json(self) -> list[list[Any]]:
        return [[o.execution_id, o.timestamp_ms, int(o.correct)] for o in self._items]

    @classmethod
    def from_json(cls, data: list[list[Any]]) -> RollingWindow:
        return cls([Observation(str(e), int(t), bool(c)) for e, t, c in data])


@dataclass
class WorkerState:
    worker_id: str
    window: RollingWindow = field(default_factory=RollingWindow)
    labeled_total: int = 0
    labeled_at_last_request: int = 0
    last_request_ms: int | None = None
    last_job_id: str | None = None
    in_flight_job_id: str | None = None
    in_flight_since_ms: int | None = None
    breach_streak: int = 0
    breach_since_ms: int | None = None
    blocked_alerted: bool = False  # this breach's "no request possible" alert went out
    periodic_anchor_ms: int | None = None
    last_traceparent: str | None = None
    requests_total: int = 0
    last_status: str | None = None
    finished_job_ids: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def new_examples(self) -> int:
        return self.labeled_total - self.labeled_at_last_request

    def record_request(self, job_id: str, at_ms: int) -> None:
        """A request for this worker went out (ours or anyone's): start cooldown and in-flight."""
        if job_id in (self.last_job_id, self.in_flight_job_id):
            return
        self.last_request_ms = at_ms
        self.last_job_id = job_id
        self.labeled_at_last_request = self.labeled_total
        if job_id not in self.finished_job_ids:  # its final status may have been read first
            self.in_flight_job_id = job_id
            self.in_flight_since_ms = at_ms
        self.breach_streak = 0
        self.breach_since_ms = None
        self.blocked_alerted = False
        self.periodic_anchor_ms = at_ms
        self.requests_total += 1

    def finish(self, job_id: str) -> None:
        """A job reached a final status."""
        self.finished_job_ids = [*self.finished_job_ids[-(_FINISHED_KEPT - 1) :], job_id]
        if self.in_flight_job_id == job_id:
            self.in_flight_job_id = None
            self.in_flight_since_ms = None

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in vars(self).items() if k not in ("window", "worker_id")}
        data["window"] = self.window.to_json()
        return data

    @classmethod
    def from_json(cls, worker_id: str, data: dict[str, Any]) -> WorkerState:
        known = set(cls.__dataclass_fields__) - {"window", "worker_id"}
        state = cls(worker_id, **{k: v for k, v in data.items() if k in known})
        state.window = RollingWindow.from_json(data.get("window", []))
        return state
