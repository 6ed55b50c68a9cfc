"""The in-memory join window that pairs executions with feedback across batches."""

from __future__ import annotations

from dspy_flywheel.collector.events import Execution, Feedback, RawMessage, Rejected
from dspy_flywheel.collector.window import JoinWindow


def _exec(eid: str, offset: int) -> tuple[RawMessage, Execution]:
    raw = RawMessage("ex", 0, offset, None, b"")
    return raw, Execution(
        f"e{eid}", "w", "t", None, eid, {"q": 1}, {"a": 1}, True, 1.0, 0, 0, 0, None, 0
    )


def _fb(eid: str, offset: int) -> tuple[RawMessage, Feedback]:
    raw = RawMessage("fb", 1, offset, None, b"")
    return raw, Feedback(f"f{eid}", "w", eid, {"a": 1}, 1.0, "user", 0)


def test_pairs_are_released_together_and_halves_held() -> None:
    window = JoinWindow(hold_s=10)
    out = window.offer([_exec("a", 0), _exec("b", 1), _fb("a", 0)], now=0)
    assert sorted(r.offset for r, _ in out) == [0, 0]
    assert len(window) == 1
    assert window.lowest_held_offsets() == {("ex", 0): 1}
    out = window.offer([_fb("b", 5)], now=1)
    assert {(r.topic, r.offset) for r, _ in out} == {("ex", 1), ("fb", 5)}
    assert len(window) == 0
    assert window.lowest_held_offsets() == {}


def test_rejects_pass_straight_through() -> None:
    raw = RawMessage("ex", 0, 3, None, b"junk")
    out = JoinWindow().offer([(raw, Rejected(raw, "corrupt_payload", "x"))], now=0)
    assert [r for r, _ in out] == [raw]


def test_aged_and_overflowing_entries_are_released() -> None:
    window = JoinWindow(hold_s=2, max_held=3)
    window.offer([_exec("a", 0)], now=0)
    assert window.take_aged(now=1) == []
    assert [r.offset for r, _ in window.take_aged(now=2.5)] == [0]
    out = window.offer([_exec(str(i), i) for i in range(5)], now=3)
    assert [r.offset for r, _ in out] == [0, 1]  # oldest first, down to max_held
    assert len(window) == 3
    assert len(window.take_all()) == 3
    assert len(window) == 0
