"""Regressions: records and configs that made the trigger exit (on every restart), and CLI input
that crashed or was accepted. The trigger runs in this process on the real stack."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.trigger import TriggerPolicyConfig, read_configs, write_config
from dspy_flywheel.trigger.app import run
from tests.integration.helpers import until
from tests.integration.hostile import (
    dead_letters,
    execution,
    now_ms,
    request,
    run_cli,
    send_event,
)
from tests.integration.test_trigger_service import Harness, perf_config, settings_for

pytestmark = pytest.mark.timeout(240)
DEEP = "[" * 50_000 + "]" * 50_000


@pytest.fixture
def harness(
    kafka_settings: KafkaSettings,
    topics: Topics,
    db_pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    unique: str,
) -> Harness:
    return Harness(kafka_settings, topics, db_pool, producer, f"worker-{unique}")


@contextlib.asynccontextmanager
async def trigger(topics: Topics, schema: str) -> AsyncIterator[asyncio.Task[None]]:
    """The trigger service in this process until the block ends (it must not end before)."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(settings_for(topics, schema), stop=stop, ready=ready))
    await until(lambda: _started(task, ready), "the trigger to start")
    try:
        yield task
        assert not task.done(), "the trigger stopped"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _started(task: asyncio.Task[None], ready: asyncio.Event) -> bool:
    if task.done():
        task.result()
    return ready.is_set()


def _config_record(worker: str, **changes: Any) -> dict[str, Any]:
    record = TriggerPolicyConfig(worker_id=worker).to_record()
    record.update(updated_by="someone", **changes)
    return record


async def test_nul_worker_ids_in_executions_and_requests_do_not_stop_the_trigger(
    topics: Topics,
    db_schema: str,
    harness: Harness,
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
) -> None:
    await write_config(kafka_settings, topics.trigger_config, perf_config(harness.worker))
    async with trigger(topics, db_schema):
        await _nul_records_then_labels(topics, harness, producer)
    # one owner per DLQ: the trigger dead-letters statuses, the collector and the optimizer
    # the others (they are not running here, so those DLQs stay empty)
    assert sum((await dead_letters(kafka_settings, topics.optimization_status)).values()) == 1
    assert not await dead_letters(kafka_settings, topics.executions)
    assert not await dead_letters(kafka_settings, topics.optimization_requests)


async def _nul_records_then_labels(
    topics: Topics, harness: Harness, producer: AIOKafkaProducer
) -> None:
    nul = harness.worker + "\x00"
    await send_event(producer, topics.executions, "ExecutionRecorded", execution(nul))
    await send_event(producer, topics.optimization_requests, "OptimizationRequested", request(nul))
    status = request(nul)  # a status with the same ids
    await send_event(
        producer,
        topics.optimization_status,
        "OptimizationStatusChanged",
        {
            "job_id": status["job_id"],
            "worker_id": nul,
            "status": "running",
            "progress": 0.5,
            "message": None,
            "details_json": "{}",
            "timestamp_ms": now_ms(),
        },
    )
    await harness.pattern(10, 3)
    await until(lambda: harness.processed(3), "labels after the bad records")


async def test_bad_configs_are_dead_lettered_once_alerted_and_skipped(
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    harness: Harness,
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
) -> None:
    """A config nested 50,000 deep, and one with an impossible cron written past the CLI: the
    trigger exited on them (and `trigger show` crashed). Now each is set aside once (also
    across a restart), alerted once, and the worker's good config stays in effect."""
    worker = harness.worker
    await write_config(kafka_settings, topics.trigger_config, perf_config(worker))
    bad = [
        await send_event(
            producer,
            topics.trigger_config,
            "TriggerConfig",
            _config_record(worker, optimizer_params_json=DEEP),
        ),
        await send_event(
            producer,
            topics.trigger_config,
            "TriggerConfig",
            _config_record(worker, policy="periodic", cron="0 0 30 2 *"),
        ),
    ]
    for _ in range(2):  # a restart reads the compacted topic again
        async with trigger(topics, db_schema):
            await harness.pattern(10, 3)
            await until(lambda: harness.processed(harness.sent), "labels after the bad configs")
            view = await harness.view()
            assert view["config"]["policy"] == "performance"  # the good config still applies
    letters = await dead_letters(kafka_settings, topics.trigger_config)
    assert {source: letters[source] for source in bad} == {source: 1 for source in bad}

    async def alerts() -> list[dict[str, Any]]:
        rows = await db_pool.fetch(
            "SELECT record FROM trigger_outbox WHERE scope = $1 AND event_type = 'Alert'",
            topics.prefix,
        )
        return [r["record"] for r in rows if r["record"]["kind"] == "invalid_trigger_config"]

    found = await until(alerts, "the invalid-config alerts")
    assert sorted(json.loads(a["details_json"])["source"] for a in found) == sorted(bad)
    env = {"FLYWHEEL_TOPIC_PREFIX": topics.prefix, "FLYWHEEL_DB_SCHEMA": db_schema}
    code, out, err = await run_cli(env, "trigger", "show", worker)
    assert code == 0, out + err
    assert json.loads(out[out.index("{") :])[worker]["config"]["policy"] == "performance"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--policy", "periodic", "--cron", "0 0 30 2 *"], "never matches"),
        (["--cooldown", "99999999999999999999"], "cooldown_seconds must be in"),
        (["--window-size", "-5"], "window_size must be in"),
        (["--optimizer", "NoSuchOpt"], "unknown optimizer 'NoSuchOpt'"),
        (["--program-ref", "tempfile:mkdtemp"], "is not registered for worker"),
    ],
)
async def test_the_cli_refuses_bad_configs_before_writing(
    topics: Topics,
    db_schema: str,
    kafka_settings: KafkaSettings,
    unique: str,
    flags: list[str],
    message: str,
) -> None:
    worker = f"cli-{unique}"
    env = {"FLYWHEEL_TOPIC_PREFIX": topics.prefix, "FLYWHEEL_DB_SCHEMA": db_schema}
    code, out, err = await run_cli(env, "trigger", "set", worker, *flags)
    configs = await read_configs(kafka_settings, topics.trigger_config)
    assert code == 2, out + err
    assert message in out
    assert "Traceback" not in out + err
    assert worker not in configs  # nothing was written
