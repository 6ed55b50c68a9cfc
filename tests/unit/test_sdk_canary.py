"""A worker instance on canary: candidates wait for the controller, calls split by key."""

from __future__ import annotations

from collections import Counter

from dspy_flywheel.rollout.state import Assignment
from dspy_flywheel.sdk.programs import ProgramSlot
from tests.unit.test_sdk_programs import Classify, published


def instruction(slot: ProgramSlot, key: str) -> str:
    serving = slot.route.choose(key)
    return str(serving.program.predict.signature.instructions)


def test_candidate_waits_for_the_assignment_then_splits_by_key() -> None:
    slot = ProgramSlot(Classify, history_size=5, worker_id="w")
    assert slot.offer(1, *published(1)).status == "serving"
    loaded = slot.offer(2, *published(2), rollout="candidate")
    assert loaded.status == "loaded"
    assert slot.current.version == 1  # not served before the controller says so
    outcome = slot.assign(Assignment(1, 2, 0.25), sequence=1)
    assert outcome is not None
    assert (outcome.status, outcome.version) == ("canary", 2)
    picks = Counter(slot.route.choose(f"exec-{i}").version for i in range(8000))
    assert abs(picks[2] / 8000 - 0.25) < 0.02
    assert instruction(slot, "user-7") == instruction(slot, "user-7")  # sticky per key
    other = ProgramSlot(Classify, history_size=5, worker_id="w")  # another replica
    other.offer(1, *published(1))
    other.offer(2, *published(2), rollout="candidate")
    other.assign(Assignment(1, 2, 0.25), sequence=1)
    keys = [f"session-{i}" for i in range(500)]
    assert [slot.route.choose(k).version for k in keys] == [
        other.route.choose(k).version for k in keys
    ]


def test_promotion_and_stale_assignments() -> None:
    slot = ProgramSlot(Classify, history_size=5, worker_id="w")
    slot.offer(1, *published(1))
    slot.offer(2, *published(2), rollout="candidate")
    slot.assign(Assignment(1, 2, 0.1), sequence=3)
    promoted = slot.assign(Assignment(2), sequence=4)
    assert promoted is not None
    assert (promoted.status, slot.current.version, slot.route.candidate) == ("serving", 2, None)
    assert slot.assign(Assignment(1, 2, 0.1), sequence=3) is None  # an older one: ignored
    assert slot.current.version == 2


def test_assignment_before_its_version_arrives_waits() -> None:
    slot = ProgramSlot(Classify, history_size=5, worker_id="w")
    waiting = slot.assign(Assignment(None, 4, 0.5), sequence=1)
    assert waiting is not None
    assert waiting.status == "waiting"
    assert slot.route.candidate is None
    applied = slot.offer(4, *published(4), rollout="candidate")
    assert (applied.status, applied.version) == ("canary", 4)
    assert slot.route.candidate is not None


def test_pinned_assignment_holds_published_versions() -> None:
    slot = ProgramSlot(Classify, history_size=5, worker_id="w")
    slot.offer(1, *published(1))
    slot.assign(Assignment(1, pinned=True), sequence=1)
    held = slot.offer(2, *published(2))
    assert (held.status, slot.current.version) == ("pinned", 1)


def test_local_pin_holds_assignments_until_unpin() -> None:
    slot = ProgramSlot(Classify, history_size=5, worker_id="w")
    slot.offer(1, *published(1))
    slot.offer(2, *published(2), rollout="candidate")
    slot.pin()
    held = slot.assign(Assignment(2), sequence=1)
    assert held is not None
    assert (held.status, slot.current.version) == ("pinned", 1)
    slot.unpin()
    assert slot.current.version == 2
