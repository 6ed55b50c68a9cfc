"""One demo run against running services: serve traffic, follow the lifecycle, measure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dspy

from dspy_flywheel.demo.display import Display, serving_label
from dspy_flywheel.demo.services import ServiceGroup
from dspy_flywheel.demo.traffic import Tally, Tickets, is_correct
from dspy_flywheel.demo.watch import Lifecycle
from dspy_flywheel.lm import engine_stats

FINAL = ("succeeded", "rejected", "failed", "cancelled")
GATHER_CALLS = 60  # most labeled calls served after the trigger while the job waits for data


class DemoFailed(RuntimeError):
    pass


def lm_usage(lm: dspy.LM) -> dict[str, int]:
    stats = engine_stats(lm)
    return {
        "calls": stats.calls,
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
    }


@dataclass
class DemoSession:
    worker: Any
    lm: dspy.LM
    lifecycle: Lifecycle
    services: ServiceGroup
    display: Display
    tickets: Tickets
    reserved: Tickets = field(default_factory=lambda: Tickets(()))  # for phase_after
    tally: Tally = field(default_factory=Tally)
    phases: dict[str, float] = field(default_factory=dict)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    concurrency: int = 1  # calls in flight at once: the LM server's slots
    canary_calls: int = 0
    canary_reused: int = 0  # canary calls that served a ticket again (Tickets.next)
    _announced: int = 0  # rollout decisions already printed

    def refresh(self) -> None:
        if dead := self.services.dead():
            raise DemoFailed(f"service(s) exited: {dead}; see {self.services.log_dir}")
        serving = serving_label(self.worker.version, self.worker.candidate)
        self.display.update(self.tally, self.lifecycle, serving)

    async def serve_one(self) -> None:
        example = self.tickets.next()
        if example is None:  # none is served again that the job may have trained on
            raise DemoFailed(f"ran out of labeled tickets ({self.tally.calls()} calls answered)")
        if self.tickets.reused == 1:
            self.display.note(
                "fresh tickets used up: serving again, in turn, the tickets served since the "
                "job's snapshot (none is in the candidate's training data)"
            )
        pred = await asyncio.to_thread(self.worker, ticket=example.ticket)
        self.worker.feedback(pred.execution_id, label=example.label)
        self.tally.add(pred.program_version, is_correct(example, pred))  # the version that served
        self.refresh()
        self._announce_decisions()

    async def serve(self, more: Callable[[], bool], most: int) -> int:
        """Serve calls, ``concurrency`` at a time, while ``more()`` holds and fewer than ``most``
        have started; calls in flight when ``more()`` turns false finish and count. Returns
        the number of calls served."""
        started = 0

        async def lane() -> None:
            nonlocal started
            while started < most and more():
                started += 1
                await self.serve_one()

        lanes = [asyncio.create_task(lane()) for _ in range(max(1, self.concurrency))]
        try:
            await asyncio.gather(*lanes)
        finally:  # one lane failed: the others stop too
            for task in lanes:
                task.cancel()
        return started

    async def wait_for(self, done: Callable[[], bool], within_s: float) -> bool:
        end = time.monotonic() + within_s
        while not done() and time.monotonic() < end:
            self.refresh()
            await asyncio.sleep(0.5)
        return done()

    async def phase_before(self, max_calls: int) -> None:
        """Labeled traffic on the code's program until the trigger asks for an optimization."""
        self.display.phase = "serving traffic with labels; waiting for the trigger"
        started, usage = time.monotonic(), lm_usage(self.lm)
        await self.serve(lambda: self.lifecycle.request is None, max_calls - self.tally.calls())
        await self.wait_for(lambda: self.lifecycle.request is not None, 15)
        if self.lifecycle.request is None:
            accuracy = self.tally.accuracy("code")
            raise DemoFailed(
                f"the trigger did not fire within {max_calls} calls (accuracy "
                f"{accuracy} stayed above the threshold?)"
            )
        request = self.lifecycle.request
        self.display.note(f"trigger fired: {request.reason}, evidence {request.evidence_json}")
        if await self.wait_for(lambda: self.lifecycle.alert is not None, 5):
            alert = self.lifecycle.alert
            assert alert is not None
            self.display.note(f"alert ({alert.severity}): {alert.message}")
        # the job waits for enough labeled examples for the gate's holdout; traffic goes on
        self.display.phase = "serving traffic with labels; the job gathers its holdout"
        gather_most = max_calls + GATHER_CALLS - self.tally.calls()
        await self.serve(lambda: not self._snapshot_taken(), gather_most)
        await self.wait_for(self._snapshot_taken, 30)
        self.tickets.recycle_from_now()
        self._record("traffic until the job's snapshot", started, "worker before", usage)
        split = self.lifecycle.details.get("split")
        self.display.note(
            f"job took its dataset snapshot after {self.tally.calls()} calls: {split}"
        )

    def _snapshot_taken(self) -> bool:
        return "split" in self.lifecycle.details or self.lifecycle.status in FINAL

    async def phase_optimize(self, within_s: float) -> None:
        """Traffic pauses: the optimizer needs both CPU cores of this machine."""
        self.display.phase = "optimizing (traffic paused: the optimizer uses the 2 CPU cores)"
        started = time.monotonic()
        await self.wait_for(lambda: self.lifecycle.status in FINAL, within_s)
        self.phases["optimization job"] = time.monotonic() - started
        status, message = self.lifecycle.status, self.lifecycle.message or ""
        self.display.note(f"job {self.lifecycle.job_id} ended: {status} {message}")
        if status == "rejected":
            raise DemoFailed(
                f"the gate refused the candidate: {message}\nThat is the gate at work: it "
                "publishes only a gain it can prove on this run's holdout, and now and then a "
                "better candidate's holdout does not prove it. Run ops/demo again (each run's "
                "traffic and split differ), or hold out more: "
                "FLYWHEEL_OPTIMIZER_MIN_HOLDOUT=80 ops/demo (about a minute longer)."
            )
        if status != "succeeded":
            ended = status or "without a status"
            raise DemoFailed(f"the optimization job ended {ended}: {message}")
        if not await self.wait_for(lambda: self.lifecycle.decision() is not None, 60):
            raise DemoFailed("the rollout service did not take up the published version in 60 s")
        self._announce_decisions()

    async def phase_canary(self, max_calls: int) -> None:
        """The new version serves a share of live traffic until the live test decides."""
        self.display.phase = "canary: both versions serve live traffic; the live test decides"
        started, usage = time.monotonic(), lm_usage(self.lm)
        ends = ("promoted", "rolled_back", "kept_current")
        calls = await self.serve(lambda: self.lifecycle.decision(*ends) is None, max_calls)
        await self.wait_for(lambda: self.lifecycle.decision(*ends) is not None, 15)
        self._announce_decisions()
        self._record("canary on live traffic", started, "worker during canary", usage)
        decided = self.lifecycle.decision(*ends)
        if decided is None:
            raise DemoFailed(f"no rollout decision after {calls} canary calls")
        if decided.decision != "promoted":
            raise DemoFailed(f"the canary ended {decided.decision}: {decided.reason}")
        self.canary_calls, self.canary_reused = calls, self.tickets.reused
        started = time.monotonic()
        if not await self.wait_for(lambda: self.worker.version is not None, 60):
            raise DemoFailed("the worker did not switch to the promoted program within 60 s")
        self.phases["promotion → worker serving"] = time.monotonic() - started
        self.display.note(f"worker switched: now serving v{self.worker.version} to every call")

    def _announce_decisions(self) -> None:
        for rollout in self.lifecycle.rollouts[self._announced :]:
            self.display.note(f"rollout decision: {rollout.decision}: {rollout.reason}")
        self._announced = len(self.lifecycle.rollouts)

    async def phase_after(self) -> None:
        """The reserved tickets, which no phase has served, on the promoted program."""
        self.display.phase = "serving new traffic on the optimized program"
        started, usage = time.monotonic(), lm_usage(self.lm)
        self.tickets = self.reserved
        await self.serve(lambda: True, len(self.reserved))
        self._record("traffic after reload", started, "worker after", usage)

    def _record(self, phase: str, started: float, usage_key: str, usage: dict[str, int]) -> None:
        self.phases[phase] = time.monotonic() - started
        now = lm_usage(self.lm)
        self.usage[usage_key] = {k: now[k] - usage.get(k, 0) for k in now}
