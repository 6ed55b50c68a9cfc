"""Program registry and job rows on the real database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import dspy
import pytest

from dspy_flywheel.compile.errors import IncompatibleProgram, ProgramNotFound
from dspy_flywheel.sdk.agent import DSPyAgent
from dspy_flywheel.store import jobs, programs
from tests.fixtures import fake_task


def new_program(worker: str, job_id: str | None = None) -> programs.NewProgram:
    return programs.NewProgram(
        worker_id=worker,
        state={"route": {"demos": []}},
        signature={"route": {"inputs": ["text"], "outputs": ["label"]}},
        optimizer="BootstrapFewShot",
        size_bytes=10,
        job_id=job_id,
    )


async def add(pool: asyncpg.Pool, program: programs.NewProgram) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return (await programs.add_version(conn, program)).version


async def test_versions_count_up_without_collisions(db_pool: asyncpg.Pool, unique: str) -> None:
    worker = f"w-{unique}"
    versions = await asyncio.gather(*(add(db_pool, new_program(worker)) for _ in range(8)))
    assert sorted(versions) == list(range(1, 9))
    assert [v.version for v in await programs.list_versions(db_pool, worker)] == list(
        range(8, 0, -1)
    )
    latest = await programs.latest(db_pool, worker)
    assert latest is not None
    assert latest.version == 8
    assert latest.state == {"route": {"demos": []}}


async def test_a_job_publishes_at_most_once(db_pool: asyncpg.Pool, unique: str) -> None:
    worker = f"w-{unique}"
    await add(db_pool, new_program(worker, job_id=f"job-{unique}"))
    with pytest.raises(asyncpg.UniqueViolationError):
        await add(db_pool, new_program(worker, job_id=f"job-{unique}"))
    assert [v.version for v in await programs.list_versions(db_pool, worker)] == [1]
    async with db_pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="inside a transaction"):
            await programs.add_version(conn, new_program(worker))


async def test_acks_are_recorded_once_and_latest_per_instance(
    db_pool: asyncpg.Pool, unique: str
) -> None:
    worker = f"w-{unique}"

    def ack(event: str, instance: str, version: int | None, second: int) -> programs.Ack:
        return programs.Ack(
            event_id=f"{unique}-{event}",
            worker_id=worker,
            instance_id=instance,
            version=version,
            status="serving",
            reason=None,
            traceparent=None,
            acked_at=datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC),
        )

    assert await programs.record_ack(db_pool, ack("a", "pod-1", 1, 1))
    assert not await programs.record_ack(db_pool, ack("a", "pod-1", 1, 1))
    assert await programs.record_ack(db_pool, ack("b", "pod-1", 2, 2))
    assert await programs.record_ack(db_pool, ack("c", "pod-2", 1, 3))
    serving = {a.instance_id: a.version for a in await programs.serving(db_pool, worker)}
    assert serving == {"pod-1": 2, "pod-2": 1}


async def test_job_rows_enqueue_once_claim_once(db_pool: asyncpg.Pool, unique: str) -> None:
    req = jobs.JobRequest(
        job_id=f"job-{unique}",
        worker_id=f"w-{unique}",
        optimizer="BootstrapFewShot",
        params={"max_bootstrapped_demos": 2},
    )
    assert await jobs.enqueue(db_pool, req)
    assert not await jobs.enqueue(db_pool, req)
    claims = await asyncio.gather(*(jobs.claim_next(db_pool, f"o{i}", "h", i) for i in range(4)))
    mine = [c for c in claims if c is not None and c.job_id == req.job_id]
    assert len(mine) == 1
    assert mine[0].status == "running"
    owner = mine[0].owner
    assert owner is not None
    assert await jobs.heartbeat(db_pool, req.job_id, owner) is False
    assert await jobs.heartbeat(db_pool, req.job_id, "someone-else") is None
    done = await jobs.finish(db_pool, req.job_id, "failed", "x", only_from=("running",))
    assert done is not None
    assert done.finished_at is not None
    assert await jobs.finish(db_pool, req.job_id, "succeeded", "y") is None  # terminal stays
    assert await jobs.request_cancel(db_pool, req.job_id) is None


async def test_agent_registry_round_trip(
    db_pool: asyncpg.Pool, unique: str, tmp_path: Path
) -> None:
    agent = DSPyAgent(fake_task.make_lm(), home=tmp_path)
    data = fake_task.tickets(40, seed=2)
    compiled = agent.compile_with_optimizer(fake_task.TicketRouter(), data, "BootstrapFewShot")
    worker, registry = f"w-{unique}", programs.Registry(db_pool)
    assert await agent.asave_to_registry(registry, worker, fake_task.TicketRouter()) == 1
    assert await agent.asave_to_registry(registry, worker, compiled) == 2
    version, loaded = await agent.aload_from_registry(registry, worker, fake_task.TicketRouter())
    assert version == 2
    assert loaded.dump_state() == compiled.dump_state()
    _, first = await agent.aload_from_registry(registry, worker, fake_task.TicketRouter(), 1)
    assert not first.route.demos
    with pytest.raises(IncompatibleProgram):
        await agent.aload_from_registry(registry, worker, dspy.Predict("question -> answer"))
    with pytest.raises(ProgramNotFound):
        await agent.aload_from_registry(registry, f"none-{unique}", fake_task.TicketRouter())
