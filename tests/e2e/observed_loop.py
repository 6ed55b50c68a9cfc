"""One optimization lifecycle on the real stack, set up to be observed from outside.

Collector, trigger, optimizer, rollout and manager (RBAC on) run as child processes with their
Prometheus endpoints on free ports and OTLP metrics going to a receiver in the test; the worker
runs as a child process too (``observed_worker``: two instances, SDK metrics on). Spans go to
the stack's Jaeger. ``observed_loop()`` yields once the worker instances serve the published
version, and tears everything down after the module's tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from dspy_flywheel.bus import ensure_topics, start_producer
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.settings import KafkaSettings, PostgresSettings
from dspy_flywheel.store import apply_migrations
from dspy_flywheel.store.pool import connect
from tests.e2e.harness import ROOT, running_loop, service_env
from tests.otlp_receiver import OtlpMetricsReceiver

SERVICES = ("collector", "trigger", "optimizer", "rollout", "manager")
DASHBOARD_REFRESH_S = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Observed:
    topics: Topics
    schema: str
    metrics_ports: dict[str, int]  # service (and "worker") -> /metrics port
    api: str  # manager base URL
    viewer_token: str
    receiver: OtlpMetricsReceiver
    report: dict[str, Any]  # what the worker process printed
    trace_id: str
    job_id: str
    log_dir: Path

    def scrape(self, service: str) -> str:
        url = f"http://127.0.0.1:{self.metrics_ports[service]}/metrics"
        return httpx.get(url, timeout=10).text

    def get(self, path: str, **params: Any) -> Any:
        reply = httpx.get(
            f"{self.api}{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.viewer_token}"},
            timeout=10,
        )
        reply.raise_for_status()
        return reply.json()


async def _fresh_schema() -> str:
    schema = f"obs_{uuid.uuid4().hex[:10]}"
    conn = await connect(PostgresSettings())
    try:
        await apply_migrations(conn, schema)
    finally:
        await conn.close()
    return schema


async def _drop_schema(schema: str) -> None:
    conn = await connect(PostgresSettings())
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def send_corrupt_execution(kafka: KafkaSettings, topics: Topics) -> None:
    """One undecodable record on the executions topic (a real bad input for the DLQ path)."""
    producer = await start_producer(kafka)
    try:
        await producer.send_and_wait(topics.executions, b"\x00not avro", key=b"loop-bfs")
    finally:
        await producer.stop()


def _dead_lettered(port: int) -> bool:
    scrape = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return "\nflywheel_dlq_records_total{" in scrape


def start_worker_process(env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.observed_worker"],
            env={**os.environ, **env},
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )


def stop_worker_process(child: subprocess.Popen[str], grace_s: float = 120) -> None:
    """Close its stdin (it closes its workers and exits); kill it if that takes too long."""
    try:
        child.communicate("", timeout=grace_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()


async def _read_report(child: subprocess.Popen[str], check_alive: Any) -> dict[str, Any]:
    assert child.stdout is not None
    reading = asyncio.ensure_future(asyncio.to_thread(child.stdout.readline))
    while not reading.done():
        check_alive()
        await asyncio.sleep(0.5)
    line = reading.result()
    if not line:
        raise AssertionError(f"worker process exited with {child.wait()} and no report")
    report: dict[str, Any] = json.loads(line)
    if "error" in report:
        raise AssertionError(f"worker process: {report}")
    return report


@asynccontextmanager
async def observed_loop(kafka: KafkaSettings, tmp: Path) -> AsyncIterator[Observed]:
    schema = await _fresh_schema()
    topics = Topics(prefix=f"obs{uuid.uuid4().hex[:8]}-", partitions=2)
    await ensure_topics(kafka, topics)
    ports = {name: free_port() for name in (*SERVICES, "worker")}
    api_port = free_port()
    viewer = secrets.token_hex(16)
    operator = secrets.token_hex(16)
    with OtlpMetricsReceiver() as receiver:
        env = service_env(
            topics,
            schema,
            kafka,
            FLYWHEEL_OPTIMIZER_LM_REF="tests.fixtures.fake_task:make_lm",
            FLYWHEEL_OPTIMIZER_ROLLOUT="immediate",  # no canary: the trace ends in each reload
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=receiver.endpoint,
            OTEL_METRIC_EXPORT_INTERVAL="1000",
            OTEL_BSP_SCHEDULE_DELAY="200",
            FLYWHEEL_MANAGER_PORT=str(api_port),
            FLYWHEEL_MANAGER_DASHBOARD_REFRESH_S=str(DASHBOARD_REFRESH_S),
            FLYWHEEL_API_TOKENS=f"viewer:viewer:{viewer},ops:operator:{operator}",
            **{f"FLYWHEEL_{name.upper()}_METRICS_PORT": str(p) for name, p in ports.items()},
            FLYWHEEL_WORKER_SPOOL_DIR=str(tmp / "spool"),
        )
        async with running_loop(env, tmp / "logs", kafka, topics, "loop-bfs", SERVICES) as loop:
            child = start_worker_process(env, tmp / "logs" / "worker.log")
            try:
                report = await _read_report(child, loop.check_alive)
                # Every consumer is past its start now: one bad record for the DLQ path (the
                # collector owns the executions topic's DLQ; the trigger skips the record).
                await send_corrupt_execution(kafka, topics)
                await loop.until(
                    lambda: _dead_lettered(ports["collector"]),
                    60,
                    "the corrupt record in the collector's DLQ count",
                )
                await loop.until(lambda: loop.lifecycle.trace_id is not None, 10, "the trace id")
                assert loop.lifecycle.trace_id is not None
                assert loop.lifecycle.job_id is not None
                yield Observed(
                    topics=topics,
                    schema=schema,
                    metrics_ports=ports,
                    api=f"http://127.0.0.1:{api_port}",
                    viewer_token=viewer,
                    receiver=receiver,
                    report=report,
                    trace_id=loop.lifecycle.trace_id,
                    job_id=loop.lifecycle.job_id,
                    log_dir=tmp / "logs",
                )
            finally:
                stop_worker_process(child)
    await _drop_schema(schema)
