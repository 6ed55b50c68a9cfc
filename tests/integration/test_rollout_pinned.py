"""A pinned worker does not change version by itself, in each case where an unpinned one does
(real broker and database, the rollout fake LM playing the versions):

- a candidate published by the optimizer after the paired gate passed it;
- a good canary (0.9 against 0.6), pinned before it is published and during its canary;
- a bad canary (0.1 against 0.6), pinned before it is published and during its canary;
- drift after a promotion (the promoted version falls from 0.9 to 0.1).

While pinned, labeled traffic that decides each case without a pin (see
``test_rollout_canary.py``) flows; no decision follows the pin and every call is served by
the pinned version. Unpinned, the held candidate gets its canary and the live test decides it
as it would have: what the pin held back was a real change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.rollout.operator import send_command
from dspy_flywheel.rollout.store import fetch_state
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.store import jobs
from tests.integration.helpers import until
from tests.integration.optimizer_support import (
    TERMINAL,
    dataset,
    request,
    running_optimizer,
    send_request,
)
from tests.integration.rollout_support import (
    ENDS,
    Rollouts,
    Traffic,
    audit_rows,
    executions,
    gate_passing_optimizer,
    make_worker,
    publish_version,
    rollout_settings,
    running_rollout,
    serve_until,
    set_policy,
    watch,
)

pytestmark = pytest.mark.timeout(300)
PINNED_CALLS = 1500  # labeled calls served while pinned: each case decides in fewer unpinned


@dataclass(frozen=True)
class Case:
    tag: str  # the candidate's version tag for the fake LM (``optimized``: the gate's program)
    pin: str  # when the pin comes: before the candidate, during its canary, after promotion
    accuracy: float  # the candidate's live accuracy (the code's program: 0.6)
    unpinned: str  # what the live test decides once unpinned ("" : nothing left to decide)


CASES = {
    "gate_published": Case("optimized", "before", 0.9, "promoted"),
    "good_canary_pinned_before": Case("good", "before", 0.9, "promoted"),
    "good_canary_pinned_during": Case("good", "during", 0.9, "promoted"),
    "bad_canary_pinned_before": Case("bad", "before", 0.1, "rolled_back"),
    "bad_canary_pinned_during": Case("bad", "during", 0.1, "rolled_back"),
    "drift_after_promotion": Case("drifty", "after_promotion", 0.9, ""),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_pinned_worker_does_not_change_version(
    name: str,
    kafka_settings: KafkaSettings,
    producer: AIOKafkaProducer,
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    group_id: str,
    unique: str,
    tmp_path: Path,
    accuracy: dict[str, object],
) -> None:
    case = CASES[name]
    accuracy.update({"code": 0.6, case.tag: case.accuracy})
    worker_id = f"pin-{unique}"
    await set_policy(kafka_settings, topics, worker_id, share=0.5, min_samples=30)
    opt = await gate_passing_optimizer(db_pool, topics, db_schema, group_id, worker_id)
    async with (
        watch(kafka_settings, topics) as events,
        running_rollout(rollout_settings(topics, db_schema)),
        running_optimizer(opt, dataset(db_pool)),
    ):
        worker = make_worker(topics, tmp_path, worker_id)
        traffic = Traffic(worker)
        pin = Pin(db_pool, producer, topics, worker_id)
        try:
            await traffic.serve(20)
            if case.pin == "before":
                await pin.apply(worker, traffic)
            await _publish(case, kafka_settings, producer, db_pool, topics, worker_id)
            if case.pin == "during":
                started = await _decided(events, worker_id, "canary_started")
                await traffic.serve(20)  # both versions serve; too few labels to decide
                assert events.decisions(worker_id)[-1]["sequence"] == started["sequence"]
                await pin.apply(worker, traffic)
            if case.pin == "after_promotion":
                promoted = await serve_until(traffic, events, worker_id, *ENDS, most_calls=3000)
                assert promoted is not None
                assert promoted["decision"] == "promoted", promoted["reason"]
                await pin.apply(worker, traffic)
                accuracy[case.tag] = 0.1  # the drift that trips the guard when unpinned
            elif case.pin == "before":
                await _held(db_pool, worker_id)
            await traffic.serve(PINNED_CALLS)
            await pin.check_held(worker, traffic, events)
            unpinned = await send_command(
                db_pool, producer, topics, worker_id, "unpin", None, requested_by="test:ops"
            )
            assert unpinned["answer"] is not None, "the rollout service did not answer unpin"
            steps = [d["decision"] for d in unpinned["answer"]["decisions"]]
            decided = None
            if case.unpinned:
                assert steps == ["unpinned", "canary_started"]
                decided = await serve_until(
                    traffic, events, worker_id, *ENDS, most_calls=traffic.calls + 4000
                )
            else:
                assert steps == ["unpinned"]
        finally:
            worker.close(timeout=10)
    if decided is not None:
        assert decided["decision"] == case.unpinned, decided["reason"]
    actions = [r["action"] for r in await audit_rows(db_pool, worker_id)]
    assert actions.count("rollout.pinned") == 1
    assert actions.count("rollout.unpinned") == 1
    print(
        f"\n{name}: pinned at {_served(pin.version)}; {PINNED_CALLS} labeled calls, "
        f"no decision, all on the pinned version; unpinned: {steps}"
        + (f", then {decided['decision']}: {decided['reason']}" if decided else "")
    )


@dataclass
class Pin:
    """The operator's pin (on the version the worker serves) and what it must hold."""

    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    topics: Topics
    worker_id: str
    version: int | None = None
    sequence: int = 0
    calls_from: int = 0

    async def apply(self, worker: Any, traffic: Traffic) -> None:
        sent = await send_command(
            self.pool, self.producer, self.topics, self.worker_id, "pin", None,
            requested_by="test:ops",
        )  # fmt: skip
        assert sent["answer"] is not None, "the rollout service did not answer pin"
        assert sent["answer"]["status"] == "applied", sent["answer"]
        [pinned] = sent["answer"]["decisions"]
        self.version, self.sequence = pinned["stable_version"], pinned["sequence"]
        assert pinned["candidate_version"] is None

        async def applied() -> bool:  # a canary's candidate is withdrawn from the worker
            return worker.candidate is None and worker.version == self.version

        await until(applied, "the pin at the worker", 10)
        self.calls_from = traffic.calls

    async def check_held(self, worker: Any, traffic: Traffic, events: Rollouts) -> None:
        calls = await executions(events, self.worker_id, traffic.calls)
        since_pin = calls[self.calls_from :]
        assert len(since_pin) >= PINNED_CALLS
        served = {e["program_version"] for e in since_pin}
        assert served == {None if self.version is None else str(self.version)}
        assert (worker.version, worker.candidate) == (self.version, None)
        later = [d for d in events.decisions(self.worker_id) if d["sequence"] > self.sequence]
        assert later == [], [d["reason"] for d in later]


async def _publish(
    case: Case,
    kafka: KafkaSettings,
    producer: AIOKafkaProducer,
    pool: asyncpg.Pool,
    topics: Topics,
    worker_id: str,
) -> None:
    """Version 1 with the case's tag; the gate case's comes from the optimizer's job."""
    if case.tag != "optimized":
        await publish_version(kafka, topics, worker_id, 1, case.tag)
        return
    job = request(worker_id)
    await send_request(producer, topics, job)

    async def ended() -> jobs.Job | None:
        row = await jobs.get(pool, job.job_id)
        return row if row is not None and row.status in TERMINAL else None

    row = await until(ended, "the optimization job", 120)
    assert row.status == "succeeded", row.message
    assert (row.details["gate"]["b"], row.details["gate"]["c"]) == (25, 0)  # published


async def _decided(events: Rollouts, worker_id: str, name: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        hits = events.decided(worker_id, name)
        return hits[-1] if hits else None

    decision: dict[str, Any] = await until(found, f"a {name} decision", 30)
    return decision


async def _held(pool: asyncpg.Pool, worker_id: str) -> None:
    """The rollout service took the version published while pinned and holds it back: its
    state names v1 as the candidate waiting for the unpin."""

    async def waiting() -> bool:
        state = await fetch_state(pool, worker_id)
        return state is not None and state.get("waiting") == 1

    await until(waiting, "the rollout service to hold v1 back", 30)


def _served(version: int | None) -> str:
    return "the code's program" if version is None else f"v{version}"
