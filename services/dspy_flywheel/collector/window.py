"""In-memory join window: an execution and its feedback usually arrive seconds apart on two
topics, often in different batches. Holding the unmatched half for ``hold_s`` lets most pairs
be written together, skipping a round trip through the ``collector_pending`` table.

Held events are not durable: the engine does not acknowledge them (faust) or commits offsets
only below the lowest held offset of each partition (aiokafka), so a crash redelivers them.
Whatever is still unmatched after ``hold_s`` (or beyond ``max_held`` events) goes to the sink,
which keeps it in ``collector_pending`` under the worker's TTL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dspy_flywheel.collector.events import Execution, Feedback, Parsed, RawMessage, Rejected

Item = tuple[RawMessage, Parsed]


@dataclass(slots=True)
class _Group:
    since: float
    items: list[Item]
    has_execution: bool = False
    has_feedback: bool = False


class JoinWindow:
    def __init__(self, hold_s: float = 1.0, max_held: int = 20_000) -> None:
        self.hold_s = hold_s
        self.max_held = max_held
        self._groups: dict[str, _Group] = {}  # insertion order = age order
        self._held = 0

    def __len__(self) -> int:
        return self._held

    def offer(self, items: Iterable[Item], now: float) -> list[Item]:
        """Add a batch; return what to write now: rejects, completed pairs, aged, overflow."""
        release: list[Item] = []
        complete: list[str] = []
        for raw, item in items:
            if isinstance(item, Rejected):
                release.append((raw, item))
                continue
            group = self._groups.get(item.execution_id)
            if group is None:
                group = self._groups[item.execution_id] = _Group(now, [])
            group.items.append((raw, item))
            self._held += 1
            if isinstance(item, Execution):
                group.has_execution = True
            elif isinstance(item, Feedback):
                group.has_feedback = True
            if group.has_execution and group.has_feedback:
                complete.append(item.execution_id)
        for execution_id in dict.fromkeys(complete):
            release.extend(self._pop(execution_id))
        release.extend(self.take_aged(now))
        while self._held > self.max_held:
            release.extend(self._pop(next(iter(self._groups))))
        return release

    def take_aged(self, now: float) -> list[Item]:
        out: list[Item] = []
        while self._groups:
            execution_id, group = next(iter(self._groups.items()))
            if now - group.since < self.hold_s:
                break
            out.extend(self._pop(execution_id))
        return out

    def take_all(self) -> list[Item]:
        return [item for execution_id in list(self._groups) for item in self._pop(execution_id)]

    def lowest_held_offsets(self) -> dict[tuple[str, int], int]:
        lowest: dict[tuple[str, int], int] = {}
        for group in self._groups.values():
            for raw, _ in group.items:
                tp = (raw.topic, raw.partition)
                if raw.offset < lowest.get(tp, raw.offset + 1):
                    lowest[tp] = raw.offset
        return lowest

    def _pop(self, execution_id: str) -> list[Item]:
        group = self._groups.pop(execution_id)
        self._held -= len(group.items)
        return group.items
