"""Shared pieces of the rollout tests: the rollout service in-process, a worker on the rollout
fake LM, labeled traffic, published versions, and what the topics and tables say."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import dspy

from dspy_flywheel.contracts.codec import decode
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.optimizer.dataset import split
from dspy_flywheel.optimizer.settings import OptimizerSettings
from dspy_flywheel.rollout.app import run
from dspy_flywheel.rollout.config import RolloutPolicy
from dspy_flywheel.rollout.operator import write_policy
from dspy_flywheel.rollout.settings import RolloutSettings
from dspy_flywheel.sdk import WorkerSettings
from dspy_flywheel.sdk.worker import Worker
from dspy_flywheel.settings import KafkaSettings
from tests.fixtures.fake_task import TicketRouter, tickets
from tests.fixtures.paired_lm import ticket_number
from tests.fixtures.rollout_lm import program_for, rollout_lm
from tests.integration.helpers import EventWatch, program_updated_event, publish_event, until
from tests.integration.optimizer_support import dataset, optimizer_settings, store_tickets

TIMEOUT_S = 60.0
ENDS = ("promoted", "rolled_back", "kept_current")  # the decisions that end a canary


def rollout_settings(topics: Topics, schema: str, **overrides: Any) -> RolloutSettings:
    values: dict[str, Any] = {
        "FLYWHEEL_TOPIC_PREFIX": topics.prefix,
        "FLYWHEEL_DB_SCHEMA": schema,
        "tick_seconds": 0.2,
        "fetch_max_wait_ms": 20,
        "metrics_port": 0,
        **overrides,
    }
    return RolloutSettings.model_validate(values)


@contextlib.asynccontextmanager
async def running_rollout(settings: RolloutSettings) -> AsyncIterator[asyncio.Task[None]]:
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(settings, stop=stop, ready=ready))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait([task, waiter], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    assert ready.is_set(), "rollout service did not become ready"
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def make_worker(topics: Topics, tmp_path: Path, worker_id: str) -> Worker:
    settings = WorkerSettings(topic_prefix=topics.prefix, spool_dir=tmp_path / "spool")
    return Worker(
        worker_type="router", worker_id=worker_id, factory=TicketRouter, settings=settings
    )


async def set_policy(kafka: KafkaSettings, topics: Topics, worker_id: str, **values: Any) -> None:
    policy = RolloutPolicy(worker_id=worker_id, **values)
    await write_policy(kafka, topics.rollout_config, policy, worker_id)


async def publish_version(
    kafka: KafkaSettings,
    topics: Topics,
    worker_id: str,
    version: int,
    tag: str,
    rollout: str = "candidate",
) -> None:
    event = program_updated_event(worker_id, version, program_for(tag), rollout=rollout)
    await publish_event(kafka, topics.program_updated, worker_id, event)


@dataclass
class Traffic:
    """Labeled live calls: ``label_every``-th call gets its label as feedback."""

    worker: Worker
    label_every: int = 1
    calls: int = 0
    labels: int = 0
    _stream: Iterator[dict[str, Any]] = field(
        default_factory=lambda: iter(tickets(50_000, seed=23))
    )

    def _serve(self, n: int) -> None:
        with dspy.context(lm=rollout_lm()):
            for _ in range(n):
                ticket = next(self._stream)
                pred = self.worker(**ticket["inputs"])
                self.calls += 1
                if self.calls % self.label_every == 0:
                    self.worker.feedback(pred.execution_id, label=ticket["outputs"]["label"])
                    self.labels += 1

    async def serve(self, n: int) -> None:
        await asyncio.to_thread(self._serve, n)


class Rollouts(EventWatch):
    """Decisions and alerts as they appear on the topics; ``published_ms`` keeps each
    decision's Kafka timestamp (when the rollout service published it)."""

    published_ms: dict[int, int]

    async def _run(self) -> None:
        self.published_ms = {}
        async for msg in self._consumer:
            decoded = decode(msg.value, msg.headers)
            if decoded.event_type == "RolloutChanged":
                self.published_ms[decoded.event.sequence] = msg.timestamp
            self.events.append(decoded)
            self.arrived.append(time.perf_counter())

    def decisions(self, worker_id: str) -> list[dict[str, Any]]:
        return [d.event.to_record() for d in self.of("RolloutChanged", worker_id=worker_id)]

    def decided(self, worker_id: str, *names: str) -> list[dict[str, Any]]:
        return [d for d in self.decisions(worker_id) if d["decision"] in names]

    def alerts(self, worker_id: str) -> list[dict[str, Any]]:
        return [d.event.to_record() for d in self.of("Alert", worker_id=worker_id)]


def watch(kafka: KafkaSettings, topics: Topics) -> Rollouts:
    return Rollouts(
        kafka, topics.program_rollouts, topics.alerts, topics.program_acks, topics.executions
    )


async def serve_until(
    traffic: Traffic,
    events: Rollouts,
    worker_id: str,
    *names: str,
    most_calls: int,
    batch: int = 50,
) -> dict[str, Any] | None:
    """Serve labeled traffic until a decision among ``names`` shows up (or ``most_calls``)."""
    while traffic.calls < most_calls:
        found = events.decided(worker_id, *names)
        if found:
            return found[-1]
        await traffic.serve(batch)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the last labels may still be on their way
        found = events.decided(worker_id, *names)
        if found:
            return found[-1]
        await asyncio.sleep(0.05)
    return None


async def audit_rows(pool: asyncpg.Pool, worker_id: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT actor, action, target, details FROM audit_log WHERE target = $1 ORDER BY id",
            worker_id,
        )
    )


async def executions(events: Rollouts, worker_id: str, count: int) -> list[dict[str, Any]]:
    """The worker's first ``count`` execution events, once the watch has them all."""

    async def arrived() -> list[dict[str, Any]] | None:
        found = [e.event.to_record() for e in events.of("ExecutionRecorded", worker_id=worker_id)]
        return found if len(found) >= count else None

    found: list[dict[str, Any]] = await until(arrived, f"{count} execution events", 30)
    return found[:count]


async def gate_passing_optimizer(
    pool: asyncpg.Pool, topics: Topics, schema: str, group_id: str, worker_id: str
) -> OptimizerSettings:
    """An in-process optimizer whose candidate for ``worker_id`` passes the paired gate: 125
    stored tickets, a holdout of 100 on which the compiled program (with demos) wins 25 and
    loses none (``tests/fixtures/paired_lm.py``). On live traffic the rollout LM plays it as
    the ``optimized`` tag."""
    await store_tickets(pool, worker_id, 125)
    rows = await dataset(pool).load(worker_id, limit=None, labeled_only=True)
    parts = split(rows, seed=13, min_examples=20, train_fraction=0.2, val_fraction=0.0)
    won = [ticket_number(r.inputs["text"]) for r in parts.holdout][:25]
    return optimizer_settings(
        topics,
        schema,
        group_id,
        lm_ref="tests.fixtures.paired_lm:paired_lm",
        reuse_served=False,  # the paired LM plays both programs: the stored answers are not its
        train_fraction=0.2,
        val_fraction=0.0,
        child_env={"FLYWHEEL_TEST_WON": ",".join(map(str, won))},
    )
