"""The demo serves its traffic several calls at a time, as the shared LM server's slots allow."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from pathlib import Path
from typing import Any

import dspy
import pytest
from rich.console import Console

from dspy_flywheel.demo.display import Display
from dspy_flywheel.demo.services import ServiceGroup
from dspy_flywheel.demo.session import DemoFailed, DemoSession
from dspy_flywheel.demo.traffic import Tickets
from dspy_flywheel.demo.watch import Lifecycle


class SlowWorker:
    """Answers "billing" after ``delay_s``; records how many calls ran at once."""

    version: int | None = None
    candidate: dict[str, Any] | None = None

    def __init__(
        self, delay_s: float = 0.05, fail_on: int | None = None, canary: bool = False
    ) -> None:
        self.delay_s, self.fail_on, self.canary = delay_s, fail_on, canary
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = self.calls = 0
        self.feedback_for: list[str] = []

    def __call__(self, ticket: str) -> dspy.Prediction:
        with self.lock:
            self.calls += 1
            number = self.calls
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay_s)
            if number == self.fail_on:
                raise RuntimeError("LM server call failed")
            prediction = dspy.Prediction(label="billing")
            object.__setattr__(prediction, "execution_id", f"e{number}")
            # as the SDK does; in a canary, every other call served by the candidate v1
            served_by = 1 if self.canary and number % 2 == 0 else None
            object.__setattr__(prediction, "program_version", served_by)
            return prediction
        finally:
            with self.lock:
                self.in_flight -= 1

    def feedback(self, execution_id: str, label: str) -> None:
        self.feedback_for.append(execution_id)


def _session(worker: SlowWorker, concurrency: int, tmp_path: Path) -> DemoSession:
    labels = ["billing", "technical"] * 100
    tickets = Tickets(dspy.Example(ticket=f"t{i}", label=label) for i, label in enumerate(labels))
    return DemoSession(
        worker,
        lm=None,  # serve() never reads it
        lifecycle=Lifecycle("w"),
        services=ServiceGroup({}, tmp_path),
        display=Display(Console(file=io.StringIO())),
        tickets=tickets,
        concurrency=concurrency,
    )


async def test_calls_run_concurrency_at_a_time_and_each_is_tallied_once(tmp_path: Path) -> None:
    worker = SlowWorker(delay_s=0.2)  # long enough for all 4 threads to start on a busy machine
    session = _session(worker, 4, tmp_path)
    served = await session.serve(lambda: True, 10)
    assert served == worker.calls == 10
    assert worker.most_in_flight == 4
    assert session.tally.by_version == {"code": [5, 10]}  # every other label is "billing"
    assert sorted(worker.feedback_for) == sorted(f"e{i}" for i in range(1, 11))


async def test_calls_in_flight_when_the_condition_turns_false_finish_and_count(
    tmp_path: Path,
) -> None:
    worker = SlowWorker()
    session = _session(worker, 3, tmp_path)
    served = await session.serve(lambda: worker.calls < 5, 100)
    # 5 calls had started when the condition turned false; the lanes start no more
    assert 5 <= served == worker.calls <= 5 + 2
    assert session.tally.by_version["code"][1] == served


async def test_each_call_is_tallied_under_the_version_that_served_it(tmp_path: Path) -> None:
    worker = SlowWorker(delay_s=0.001, canary=True)
    session = _session(worker, 1, tmp_path)  # one lane: call n serves ticket n-1
    assert await session.serve(lambda: True, 8) == 8
    # tickets alternate billing/technical and the worker always says billing: the code's
    # program served the billing ones (calls 1, 3, ...), v1 the technical ones
    assert session.tally.by_version == {"code": [4, 4], "v1": [0, 4]}


async def test_one_lane_at_concurrency_one_serves_serially(tmp_path: Path) -> None:
    worker = SlowWorker(delay_s=0.01)
    session = _session(worker, 1, tmp_path)
    assert await session.serve(lambda: True, 6) == 6
    assert worker.most_in_flight == 1


async def test_a_failing_call_stops_every_lane(tmp_path: Path) -> None:
    worker = SlowWorker(fail_on=3)
    session = _session(worker, 4, tmp_path)
    with pytest.raises(RuntimeError, match="LM server call failed"):
        await session.serve(lambda: True, 100)
    await asyncio.sleep(0.3)  # a call handed to a thread just before the failure may still run
    started = worker.calls
    await asyncio.sleep(0.3)  # six more call lengths: the cancelled lanes start nothing more
    assert worker.calls == started <= 4 + 3  # the first 4, and at most 3 handed on meanwhile


async def test_running_out_of_tickets_is_a_clear_failure(tmp_path: Path) -> None:
    session = _session(SlowWorker(delay_s=0.001), 2, tmp_path)
    session.tickets = _tickets(3)  # none served after a snapshot: none to serve again
    with pytest.raises(DemoFailed, match="ran out of labeled tickets"):
        await session.serve(lambda: True, 10)


def _tickets(n: int) -> Tickets:
    return Tickets(dspy.Example(ticket=f"t{i}", label="billing") for i in range(n))


def _names(tickets: Tickets, n: int) -> list[str]:
    served = [tickets.next() for _ in range(n)]
    return [str(ex.ticket) for ex in served if ex is not None]


def test_reserved_tickets_are_the_last_and_never_served_before() -> None:
    tickets = _tickets(10)
    reserved = tickets.reserve(3)
    assert _names(tickets, 7) == [f"t{i}" for i in range(7)]
    assert tickets.next() is None  # nothing recyclable: no snapshot marked
    assert _names(reserved, 3) == ["t7", "t8", "t9"]


def test_only_tickets_served_after_the_snapshot_are_served_again() -> None:
    tickets = _tickets(6)
    for _ in range(3):  # before the snapshot: the job may have trained on these
        tickets.next()
    tickets.recycle_from_now()
    assert _names(tickets, 3) == ["t3", "t4", "t5"]
    assert _names(tickets, 5) == ["t3", "t4", "t5", "t3", "t4"]  # in turn, never t0..t2
    assert tickets.reused == 5


async def test_the_canary_goes_on_with_reused_tickets_and_says_so(tmp_path: Path) -> None:
    session = _session(SlowWorker(delay_s=0.001), 2, tmp_path)
    session.tickets = _tickets(8)
    session.tickets.recycle_from_now()
    out = io.StringIO()
    session.display = Display(Console(file=out, width=200))
    assert await session.serve(lambda: True, 12) == 12
    assert session.tickets.reused == 4
    assert "fresh tickets used up" in out.getvalue()


async def test_a_gate_refusal_ends_the_demo_with_the_evidence_and_what_to_do(
    tmp_path: Path,
) -> None:
    session = _session(SlowWorker(), 1, tmp_path)
    session.lifecycle.status = "rejected"
    session.lifecycle.message = "not published: ... 10 vs 3 (n=45)"
    with pytest.raises(DemoFailed) as failed:
        await session.phase_optimize(within_s=1)
    assert "10 vs 3 (n=45)" in str(failed.value)
    assert "FLYWHEEL_OPTIMIZER_MIN_HOLDOUT=80 ops/demo" in str(failed.value)


def test_the_demo_holdout_is_60_unless_the_environment_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dspy_flywheel.demo.runner import DemoOptions, _demo_env

    monkeypatch.delenv("FLYWHEEL_OPTIMIZER_MIN_HOLDOUT", raising=False)
    assert _demo_env(DemoOptions(), "r", {})["FLYWHEEL_OPTIMIZER_MIN_HOLDOUT"] == "60"
    monkeypatch.setenv("FLYWHEEL_OPTIMIZER_MIN_HOLDOUT", "80")
    assert _demo_env(DemoOptions(), "r", {})["FLYWHEEL_OPTIMIZER_MIN_HOLDOUT"] == "80"
