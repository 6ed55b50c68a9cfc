"""Kill the trigger service (SIGKILL) mid-cooldown and restart it: no duplicate request."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dspy_flywheel.bus import publish, start_producer
from dspy_flywheel.contracts.events import ExecutionRecorded, FeedbackRecorded
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.trigger import write_config
from dspy_flywheel.trigger.requests import RequestEnvelope, configured_request
from dspy_flywheel.trigger.store import OutboxRow, TriggerStore
from tests.integration.helpers import EventWatch, until, until_sql
from tests.integration.test_trigger_service import Harness, perf_config


class ServiceProcess:
    """``python -m dspy_flywheel.trigger`` as a real subprocess, logging to a file."""

    def __init__(self, topics: Topics, schema: str, log_path: Path) -> None:
        self.env = {
            **os.environ,
            "FLYWHEEL_TOPIC_PREFIX": topics.prefix,
            "FLYWHEEL_DB_SCHEMA": schema,
            "FLYWHEEL_TRIGGER_TICK_SECONDS": "0.2",
        }
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.log_path.write_text("")
        log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dspy_flywheel.trigger", env=self.env, stdout=log, stderr=log
        )
        log.close()

        async def ready() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                pytest.fail(f"service exited: {self.log_path.read_text()[-3000:]}")
            return "trigger service ready" in self.log_path.read_text()

        await until(ready, "service ready", 60)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(self.proc.wait(), 10) == -signal.SIGKILL

    async def terminate(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 30)


@pytest.fixture
async def watch(kafka_settings: KafkaSettings, topics: Topics) -> AsyncIterator[EventWatch]:
    async with EventWatch(kafka_settings, topics.optimization_requests) as w:
        yield w


@pytest.fixture
async def harness(
    kafka_settings: KafkaSettings, topics: Topics, db_pool: asyncpg.Pool, unique: str
) -> AsyncIterator[Harness]:
    producer = await start_producer(kafka_settings)
    yield Harness(kafka_settings, topics, db_pool, producer, f"worker-{unique}")
    await producer.stop()


@pytest.fixture
async def service(topics: Topics, db_schema: str, tmp_path: Path) -> AsyncIterator[Any]:
    procs: list[ServiceProcess] = []

    def make(name: str) -> ServiceProcess:
        procs.append(ServiceProcess(topics, db_schema, tmp_path / f"{name}.log"))
        return procs[-1]

    yield make
    for proc in procs:
        await proc.terminate()


async def test_kill_and_restart_mid_cooldown_no_duplicate(
    kafka_settings: KafkaSettings,
    topics: Topics,
    harness: Harness,
    watch: EventWatch,
    service: Any,
) -> None:
    await write_config(
        kafka_settings, topics.trigger_config, perf_config(harness.worker, cooldown_seconds=600)
    )
    first = service("first")
    await first.start()
    await harness.pattern(9, 30)
    await harness.pattern(6, 20)
    requests = await until(lambda: watch.for_worker(harness.worker), "request after the drop")
    assert len(requests) == 1
    job_id = requests[0]["job_id"]
    # the outbox row is marked sent right after the broker acks it
    await until(lambda: harness.processed(50), "50 labels processed, outbox drained")

    await first.kill()
    await harness.pattern(5, 10)  # sent while the service is down
    second = service("second")
    await second.start()
    log = second.log_path.read_text()
    assert "1 workers restored" in log
    await harness.pattern(5, 20)  # accuracy stays low, still within the cooldown
    await until(lambda: harness.processed(80), "80 labels processed by the restarted service")
    await until(watch.caught_up, "watch caught up")
    assert [r["job_id"] for r in watch.for_worker(harness.worker)] == [job_id]
    view = await harness.view()
    assert view["last_job_id"] == job_id
    assert view["requests_total"] == 1
    assert view["accuracy"] < 0.8
    assert "in flight" in view["note"] or "cooldown" in view["note"]
    assert "published optimization request" not in log  # nothing re-sent from the outbox


async def test_restart_resumes_offsets_without_recounting(
    kafka_settings: KafkaSettings,
    topics: Topics,
    harness: Harness,
    service: Any,
) -> None:
    """Labels already counted before a kill are not counted again after the restart."""
    await write_config(kafka_settings, topics.trigger_config, perf_config(harness.worker))
    first = service("first")
    await first.start()
    await harness.pattern(10, 15)
    await until(lambda: harness.processed(15), "15 labels processed")
    await first.kill()
    second = service("second")
    await second.start()
    await harness.pattern(10, 5)
    await until(lambda: harness.processed(20), "20 labels processed")
    view = await harness.view()
    assert view["window_count"] == 20
    assert view["labeled_total"] == 20
    assert view["accuracy"] == 1.0


async def test_unsent_outbox_row_is_published_on_start(
    kafka_settings: KafkaSettings,
    topics: Topics,
    harness: Harness,
    watch: EventWatch,
    service: Any,
    db_pool: asyncpg.Pool,
) -> None:
    """A crash between the state commit and the publish: the restart publishes it, same ids."""
    envelope = RequestEnvelope(
        event_id="ev-" + harness.worker,
        job_id="job-" + harness.worker,
        worker_id=harness.worker,
        traceparent=None,
        event=configured_request(
            job_id="job-" + harness.worker,
            worker_id=harness.worker,
            reason="performance",
            config=perf_config(harness.worker),
            evidence={"accuracy": 0.5},
        ),
    )
    store = TriggerStore(db_pool, topics.prefix)
    await store.save({}, {}, [OutboxRow(topics.optimization_requests, envelope)])
    proc = service("relay")
    await proc.start()
    requests = await until(lambda: watch.for_worker(harness.worker), "outbox row published")
    assert requests[0]["job_id"] == envelope.job_id

    await until_sql(
        db_pool,
        f"SELECT count(*) FROM trigger_outbox WHERE event_id = 'ev-{harness.worker}' "
        "AND sent_at IS NOT NULL",
        lambda sent: sent == 1,
    )
    assert len(watch.for_worker(harness.worker)) == 1


async def test_labels_after_restart_are_judged_against_earlier_executions(
    kafka_settings: KafkaSettings,
    topics: Topics,
    harness: Harness,
    service: Any,
    db_pool: asyncpg.Pool,
) -> None:
    """Executions read before a kill are re-read (cache warm-up), so later labels still count."""
    await write_config(kafka_settings, topics.trigger_config, perf_config(harness.worker))
    first = service("first")
    await first.start()
    for i in range(6):
        record = ExecutionRecorded(
            worker_id=harness.worker,
            worker_type="test",
            execution_id=f"x{i}",
            inputs_json="{}",
            outputs_json='{"label": "a"}',
            success=True,
            latency_ms=1.0,
            timestamp_ms=int(time.time() * 1000),
        )
        await publish(harness.producer, topics.executions, harness.worker, record)

    async def executions_committed() -> bool:
        done = await db_pool.fetchval(
            "SELECT coalesce(sum(next_offset), 0) FROM service_offsets "
            "WHERE service = 'trigger' AND scope = $1 AND topic = $2",
            topics.prefix,
            topics.executions,
        )
        return bool(done == 6)

    await until(executions_committed, "executions consumed and committed")
    await first.kill()
    second = service("second")
    await second.start()
    for i in range(6):
        record = FeedbackRecorded(
            execution_id=f"x{i}",
            worker_id=harness.worker,
            label="A" if i % 2 == 0 else "b",
            score=None,
            source="test",
            timestamp_ms=int(time.time() * 1000),
        )
        await publish(harness.producer, topics.feedback, harness.worker, record)
    await until(lambda: harness.processed(6), "6 labels judged")
    view = await harness.view()
    assert (view["window_count"], view["window_correct"]) == (6, 3)
    assert "warmed the execution cache with 6" in second.log_path.read_text()
