"""Trigger service on the real broker and database: drops, live thresholds, periodic, manual.

Shared helpers (``Harness``) are imported by ``test_trigger_restart.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from dspy_flywheel.bus import publish
from dspy_flywheel.compile.catalog import DEFAULT_OPTIMIZER
from dspy_flywheel.contracts.events import FeedbackRecorded, OptimizationStatusChanged
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.manager import ManagerSettings, OptimizationManager
from dspy_flywheel.manager.api import create_app
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.telemetry import trace_id_of
from dspy_flywheel.trigger import TriggerPolicyConfig, TriggerSettings, read_configs, write_config
from dspy_flywheel.trigger.app import run
from dspy_flywheel.trigger.requests import request_optimization
from dspy_flywheel.trigger.store import fetch_alerts, fetch_views
from tests.integration.helpers import EventWatch, new_traceparent, until

DEADLINE_S = 30.0


class Harness:
    """Produces events for one worker and reads the trigger's live view and outbox."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: Topics,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        worker: str,
    ) -> None:
        self.kafka, self.topics, self.pool, self.producer = kafka, topics, pool, producer
        self.worker = worker
        self.sent = 0
        self.traceparents: list[str] = []

    async def feedback(self, correct: bool) -> float:
        """One labeled outcome (score 1/0); returns the perf_counter time when it was acked."""
        self.sent += 1
        tp = new_traceparent()
        self.traceparents.append(tp)
        record = FeedbackRecorded(
            execution_id=f"{self.worker}-e{self.sent}",
            worker_id=self.worker,
            label=None,
            score=1.0 if correct else 0.0,
            source="test",
            timestamp_ms=int(time.time() * 1000),
        )
        await publish(
            self.producer,
            self.topics.feedback,
            self.worker,
            record,
            traceparent=tp,
        )
        return time.perf_counter()

    async def pattern(self, accuracy_tenths: int, count: int) -> None:
        for i in range(count):
            await self.feedback(i % 10 < accuracy_tenths)

    async def status(self, job_id: str, status: str) -> None:
        record = OptimizationStatusChanged(
            job_id=job_id,
            worker_id=self.worker,
            status=status,
            timestamp_ms=int(time.time() * 1000),
        )
        await publish(
            self.producer,
            self.topics.optimization_status,
            self.worker,
            record,
        )

    async def configure(self, config: TriggerPolicyConfig | None = None, **kw: Any) -> None:
        """Write the worker's trigger config (``perf_config`` with ``kw`` unless given)."""
        await write_config(
            self.kafka, self.topics.trigger_config, config or perf_config(self.worker, **kw)
        )

    async def view(self) -> dict[str, Any]:
        views = await fetch_views(self.pool, self.topics.prefix, self.worker)
        return views.get(self.worker, {})

    async def processed(self, total: int) -> bool:
        """Every labeled outcome sent so far is in the persisted state and nothing is unsent."""
        view = await self.view()
        unsent = await self.pool.fetchval(
            "SELECT count(*) FROM trigger_outbox WHERE scope = $1 AND worker_id = $2 "
            "AND sent_at IS NULL",
            self.topics.prefix,
            self.worker,
        )
        return view.get("labeled_total") == total and unsent == 0


def settings_for(topics: Topics, schema: str, **overrides: Any) -> TriggerSettings:
    return TriggerSettings(
        FLYWHEEL_TOPIC_PREFIX=topics.prefix,
        FLYWHEEL_DB_SCHEMA=schema,
        tick_seconds=0.2,
        **overrides,
    )


def perf_config(worker: str, **kw: Any) -> TriggerPolicyConfig:
    base: dict[str, Any] = {
        "policy": "performance",
        "threshold": 0.8,
        "window_size": 20,
        "min_examples": 10,
        "cooldown_seconds": 600,
        "program_ref": "demo.programs:Classifier",
    }
    base.update(kw)
    return TriggerPolicyConfig(worker_id=worker, **base)


@pytest.fixture
async def watch(kafka_settings: KafkaSettings, topics: Topics) -> AsyncIterator[EventWatch]:
    async with EventWatch(kafka_settings, topics.optimization_requests) as w:
        yield w


@pytest.fixture
async def alerts(kafka_settings: KafkaSettings, topics: Topics) -> AsyncIterator[EventWatch]:
    async with EventWatch(kafka_settings, topics.alerts) as w:
        yield w


@pytest.fixture
def harness(
    kafka_settings: KafkaSettings,
    topics: Topics,
    db_pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    unique: str,
) -> Harness:
    return Harness(kafka_settings, topics, db_pool, producer, f"worker-{unique}")


@pytest.fixture
async def start_service(topics: Topics, db_schema: str) -> AsyncIterator[Any]:
    """Starts the service in-process (as a task); stops every started one at teardown."""
    running: list[tuple[asyncio.Task[None], asyncio.Event]] = []

    async def start(**overrides: Any) -> asyncio.Event:
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(
            run(settings_for(topics, db_schema, **overrides), stop=stop, ready=ready)
        )
        running.append((task, stop))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait([task, waiter], timeout=DEADLINE_S, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            task.result()  # surface the startup error
        assert ready.is_set(), "trigger service did not become ready"
        return stop

    yield start
    for task, stop in running:
        stop.set()
        await asyncio.wait_for(task, 20)


async def flywheel_cli(topics: Topics, schema: str, *args: str) -> tuple[int, str]:
    """Run the real ``flywheel`` CLI in a subprocess; return (exit code, stdout)."""
    env = {**os.environ, "FLYWHEEL_TOPIC_PREFIX": topics.prefix, "FLYWHEEL_DB_SCHEMA": schema}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dspy_flywheel.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, f"flywheel {' '.join(args)} failed: {out!r} {err!r}"
    return proc.returncode, out.decode()


def json_tail(output: str) -> Any:
    """The JSON document a CLI command printed (after any note lines)."""
    return json.loads(output[output.index("{") :])


# --------------------------------------------------------------------------------------------
async def test_drop_fires_once_none_before_none_during_cooldown(
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    harness: Harness,
    watch: EventWatch,
    alerts: EventWatch,
    start_service: Any,
) -> None:
    await harness.configure()
    await start_service()

    await harness.pattern(9, 40)  # accuracy 0.9
    await until(lambda: harness.processed(40), "40 labels processed")
    await until(watch.caught_up, "watch caught up")
    assert watch.for_worker(harness.worker) == [], "no request while accuracy is 0.9"
    view = await harness.view()
    assert view["accuracy"] == pytest.approx(0.9)
    assert view["note"].startswith("ok")

    await harness.pattern(6, 40)  # accuracy 0.6, stays low for 40 more labels
    await until(lambda: harness.processed(80), "80 labels processed")
    await until(watch.caught_up, "watch caught up")
    requests = watch.for_worker(harness.worker)
    assert len(requests) == 1, "exactly one request after the drop, none during cooldown"
    request = requests[0]
    evidence = json.loads(request["evidence_json"])
    assert request["reason"] == "performance"
    assert request["program_ref"] == "demo.programs:Classifier"
    assert request["optimizer"] == DEFAULT_OPTIMIZER  # the config names none
    assert evidence["accuracy"] < 0.8 <= evidence["threshold"]
    assert evidence["window_count"] == 20
    assert evidence["min_examples"] == 10
    assert evidence["labeled_total"] > 40
    # the request's trace continues the trace of the feedback that crossed the threshold
    (decision,) = watch.of(worker_id=harness.worker)
    traceparent = decision.traceparent
    crossing = harness.traceparents[evidence["labeled_total"] - 1]
    assert trace_id_of(traceparent) == trace_id_of(crossing)
    assert traceparent != crossing  # a new span: trigger.decision
    # ... and an operator alert goes out with it, in the same trace
    await until(lambda: len(alerts.for_worker(harness.worker)) >= 1, "degradation alert")
    (alert_event,) = alerts.of(worker_id=harness.worker)
    alert, alert_traceparent = alert_event.event.to_record(), alert_event.traceparent
    assert (alert["kind"], alert["severity"]) == ("accuracy_below_threshold", "warning")
    assert json.loads(alert["details_json"])["job_id"] == request["job_id"]
    assert f"below the threshold {evidence['threshold']:.1%}" in alert["message"]
    assert trace_id_of(alert_traceparent) == trace_id_of(traceparent)
    view = await harness.view()
    assert view["in_flight_job_id"] == request["job_id"]
    assert view["accuracy"] < 0.8
    assert "in flight" in view["note"]

    # the job ends; accuracy is still low but the cooldown holds
    await harness.status(request["job_id"], "failed")
    await until(lambda: _view_has(harness, "in_flight_job_id", None), "job finished")
    await harness.pattern(5, 20)
    await until(lambda: harness.processed(100), "100 labels processed")
    await until(watch.caught_up, "watch caught up")
    assert len(watch.for_worker(harness.worker)) == 1
    assert "cooldown" in (await harness.view())["note"]
    # ... and the operator is told once that the breach outlived the job
    await until(lambda: len(alerts.for_worker(harness.worker)) >= 2, "blocked-breach alert")
    blocked = alerts.for_worker(harness.worker)[1]
    details = json.loads(blocked["details_json"])
    assert blocked["kind"] == "accuracy_below_threshold"
    assert details["blocked"].startswith("cooldown until ")
    assert (details["last_job_id"], details["last_status"]) == (
        request["job_id"],
        f"{request['job_id']}:failed",
    )
    assert details["accuracy"] < 0.8
    assert "no optimization requested: cooldown until " in blocked["message"]
    assert f"last job {request['job_id']} ended failed" in blocked["message"]
    await harness.pattern(5, 20)
    await until(lambda: harness.processed(120), "120 labels processed")
    await until(alerts.caught_up, "alerts caught up")
    assert len(alerts.for_worker(harness.worker)) == 2, "one blocked alert per breach"
    assert len(watch.for_worker(harness.worker)) == 1
    await _operators_read_the_alerts(topics, db_schema, db_pool, harness.worker, request)


async def _operators_read_the_alerts(
    topics: Topics, db_schema: str, db_pool: asyncpg.Pool, worker: str, request: dict[str, Any]
) -> None:
    """The same two alerts, newest first, from the store, ``flywheel trigger alerts`` and
    ``GET /api/v1/alerts``."""

    async def both_published() -> list[dict[str, Any]] | None:
        found = await fetch_alerts(db_pool, worker_id=worker)
        return found if [a["published"] for a in found] == [True, True] else None

    stored = await until(both_published, "both alerts marked published")
    assert stored[0]["details"]["blocked"].startswith("cooldown until ")
    assert stored[0]["job_id"] == stored[1]["job_id"] == request["job_id"]
    assert "blocked" not in stored[1]["details"]
    _, out = await flywheel_cli(topics, db_schema, "trigger", "alerts", worker, "--limit", "5")
    assert json.loads(out) == stored
    _, latest = await flywheel_cli(topics, db_schema, "trigger", "alerts", worker, "--limit", "1")
    assert json.loads(latest) == stored[:1]
    settings = ManagerSettings.model_validate(
        {"FLYWHEEL_TOPIC_PREFIX": topics.prefix, "FLYWHEEL_DB_SCHEMA": db_schema}
    )
    async with (
        OptimizationManager(settings) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(manager)), base_url="http://manager"
        ) as client,
    ):
        listed = await client.get("/api/v1/alerts", params={"worker_id": worker})
        assert listed.status_code == 200
        assert listed.json() == {"alerts": stored}
        bad = await client.get("/api/v1/alerts", params={"limit": "many"})
        assert bad.status_code == 400


async def _view_has(harness: Harness, key: str, value: Any) -> bool:
    view = await harness.view()
    return key in view and view[key] == value


async def test_threshold_change_while_running(
    topics: Topics,
    db_schema: str,
    harness: Harness,
    watch: EventWatch,
    start_service: Any,
) -> None:
    await harness.configure(threshold=0.5, window_size=30)
    await start_service()
    await harness.pattern(6, 20)
    await until(lambda: harness.processed(20), "20 labels processed")
    _, before = await flywheel_cli(topics, db_schema, "trigger", "show", harness.worker)
    shown = json_tail(before)[harness.worker]
    assert shown["config"]["threshold"] == 0.5
    assert shown["live"]["accuracy"] == pytest.approx(0.6)
    await until(watch.caught_up, "watch caught up")
    assert watch.for_worker(harness.worker) == [], "0.6 is above the 0.5 threshold"

    _, out = await flywheel_cli(
        topics, db_schema, "trigger", "set", harness.worker, "--threshold", "0.7"
    )
    assert json_tail(out)["window_size"] == 30  # merged: fields not given keep their value
    await until(lambda: _live_threshold(harness, 0.7), "service sees threshold 0.7")
    _, after = await flywheel_cli(topics, db_schema, "trigger", "show", harness.worker)
    shown = json_tail(after)[harness.worker]
    assert shown["config"]["threshold"] == 0.7
    assert shown["config"]["window_size"] == 30
    assert shown["config"]["program_ref"] == "demo.programs:Classifier"

    await harness.pattern(6, 2)  # the next decision uses the new threshold
    requests = await until(lambda: watch.for_worker(harness.worker), "a request")
    evidence = json.loads(requests[0]["evidence_json"])
    assert evidence["threshold"] == 0.7
    assert evidence["accuracy"] < 0.7


async def _live_threshold(harness: Harness, threshold: float) -> bool:
    config = (await harness.view()).get("config") or {}
    return config.get("threshold") == threshold


async def test_periodic_policy_fires_on_schedule(
    topics: Topics,
    harness: Harness,
    watch: EventWatch,
    start_service: Any,
) -> None:
    config = TriggerPolicyConfig(
        worker_id=harness.worker,
        policy="periodic",
        interval_seconds=1,
        optimizer="MIPROv2",
        optimizer_params_json='{"auto": "light"}',
    )
    await harness.configure(config)
    started = time.perf_counter()
    await start_service()
    first = (await until(lambda: watch.for_worker(harness.worker), "first periodic"))[0]
    assert first["reason"] == "periodic"
    assert first["optimizer"] == "MIPROv2"
    assert json.loads(first["optimizer_params_json"]) == {"auto": "light"}
    assert json.loads(first["evidence_json"])["interval_seconds"] == 1
    first_at = watch.arrived[-1]
    assert first_at - started >= 0.9
    # the next slot waits for the job in flight; once it ends, the schedule resumes
    await harness.status(first["job_id"], "succeeded")
    await until(lambda: len(watch.for_worker(harness.worker)) >= 2, "second periodic")
    second_at = watch.arrivals(harness.worker)[1]
    assert second_at - first_at >= 0.9


async def test_manual_request_goes_out_at_once(
    kafka_settings: KafkaSettings,
    topics: Topics,
    db_schema: str,
    harness: Harness,
    watch: EventWatch,
    start_service: Any,
) -> None:
    await harness.configure(policy="manual", optimizer_params_json='{"max_rounds": 1}')
    await start_service()
    _, out = await flywheel_cli(
        topics,
        db_schema,
        "optimize",
        harness.worker,
        "--optimizer",
        "MIPROv2",
        "--param",
        "auto=light",
    )
    job_id = json_tail(out)["job_id"]
    requests = await until(lambda: watch.for_worker(harness.worker), "manual request", 5)
    request = requests[0]
    assert request["job_id"] == job_id
    assert request["reason"] == "manual"
    assert request["optimizer"] == "MIPROv2"
    assert json.loads(request["optimizer_params_json"]) == {"max_rounds": 1, "auto": "light"}
    assert request["program_ref"] == "demo.programs:Classifier"
    assert request["requested_by"].startswith("cli")
    # the service sees it: the job is in flight and the cooldown has started
    await until(lambda: _view_has(harness, "in_flight_job_id", job_id), "service saw it")

    # the Python API (what the manager calls) also publishes immediately
    t0 = time.perf_counter()
    api_job = await request_optimization(
        kafka_settings, topics, harness.worker, requested_by="api:test"
    )
    await until(lambda: len(watch.for_worker(harness.worker)) >= 2, "API request", 5)
    assert watch.for_worker(harness.worker)[1]["job_id"] == api_job
    assert time.perf_counter() - t0 < 5


async def test_bad_feedback_is_skipped_and_left_to_its_dlq_owner(
    kafka_settings: KafkaSettings,
    topics: Topics,
    harness: Harness,
    start_service: Any,
    producer: AIOKafkaProducer,
) -> None:
    """The trigger reads feedback but the collector owns its DLQ: the trigger skips a bad
    record without a copy of its own (it used to write a second one) and carries on."""
    await harness.configure()
    await start_service()
    await producer.send_and_wait(topics.feedback, b"not avro", key=harness.worker.encode())
    await harness.pattern(10, 3)
    await until(lambda: harness.processed(3), "good labels processed after the bad one")
    consumer = AIOKafkaConsumer(**kafka_settings.client_kwargs(), group_id=None)
    await consumer.start()
    try:
        dlq = TopicPartition(topics.dlq(topics.feedback), 0)
        assert (await consumer.end_offsets([dlq]))[dlq] == 0
    finally:
        await consumer.stop()


async def test_config_tombstone_removes_worker_config(
    kafka_settings: KafkaSettings,
    topics: Topics,
    db_schema: str,
    harness: Harness,
) -> None:
    await harness.configure()
    _, out = await flywheel_cli(topics, db_schema, "trigger", "clear", harness.worker)
    assert "removed" in out
    assert harness.worker not in await read_configs(kafka_settings, topics.trigger_config)


async def test_second_instance_stands_by_until_the_first_stops(
    topics: Topics,
    db_schema: str,
    harness: Harness,
    watch: EventWatch,
    start_service: Any,
) -> None:
    await harness.configure()
    stop_first = await start_service()
    stop_second, second_ready = asyncio.Event(), asyncio.Event()
    second = asyncio.create_task(
        run(settings_for(topics, db_schema), stop=stop_second, ready=second_ready)
    )
    try:
        with pytest.raises(TimeoutError):  # holds no leadership while the first runs
            await asyncio.wait_for(asyncio.shield(second_ready.wait()), 2.0)
        await harness.pattern(10, 5)
        await until(lambda: harness.processed(5), "first instance processed 5")
        stop_first.set()
        await until(second_ready.is_set, "second instance took over")
        await harness.pattern(5, 20)
        await until(lambda: harness.processed(25), "second instance processed the rest")
        assert len(await until(lambda: watch.for_worker(harness.worker), "request")) == 1
    finally:
        stop_second.set()
        await asyncio.wait_for(second, 20)
