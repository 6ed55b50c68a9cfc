"""The faust engine never commits past an event it has not acknowledged yet.

faust-streaming 0.15.3 only refuses when more than one message is missing at the head of a
partition's acknowledged offsets; a single held event there was committed past and lost when
its instance died (the two-instance SIGKILL test). The engine patches that check.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from dspy_flywheel.collector import faust_app

PARTITION = TP("executions", 1)


def consumer_state(committed: int | None, acked: list[int]) -> Any:
    state = SimpleNamespace(
        _acked=defaultdict(list),
        _acked_index=defaultdict(set),
        _committed_offset=defaultdict(lambda: None),
        _gap=defaultdict(IntervalTree),
    )
    state._committed_offset[PARTITION] = committed
    state._acked[PARTITION] = list(acked)
    state._acked_index[PARTITION] = set(acked)
    return state


def new_offset(state: Any) -> int | None:
    faust_app._refuse_commits_past_a_head_gap()
    return Consumer._new_offset(state, PARTITION)  # type: ignore[arg-type]


def test_one_unacknowledged_message_at_the_head_blocks_the_commit() -> None:
    # committed = 2007 is the next offset to read: 2007 itself is not acknowledged
    assert new_offset(consumer_state(2007, [2008, 2009, 2010])) is None


def test_contiguous_acknowledgements_are_committed() -> None:
    assert new_offset(consumer_state(2007, [2007, 2008, 2009])) == 2010
    assert new_offset(consumer_state(0, [0, 1])) == 2


def test_a_gap_later_on_commits_the_contiguous_head() -> None:
    assert new_offset(consumer_state(2007, [2007, 2008, 2011])) == 2009


def test_without_a_known_committed_offset_faust_decides() -> None:
    assert new_offset(consumer_state(None, [5, 6])) == 7


def test_the_patch_is_applied_once() -> None:
    faust_app._refuse_commits_past_a_head_gap()
    patched = Consumer._new_offset
    faust_app._refuse_commits_past_a_head_gap()
    assert Consumer._new_offset is patched
    assert getattr(patched, "flywheel_patched", False)
