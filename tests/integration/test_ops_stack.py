"""The running `ops/stack`: status/env describe it, every server answers, `up` is idempotent.

Jaeger (unless FLYWHEEL_JAEGER=0) takes OTLP traces and answers its query API, on loopback only.

`ops/stack down` is not exercised here (it would stop the stack other tests share);
ops/selftest.sh covers up -> down -> no process left -> up.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "ops" / "stack"
SECOND_UP_LIMIT_S = 30.0
WITH_JAEGER = os.environ.get("FLYWHEEL_JAEGER", "1") != "0"


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STACK), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _stack_env() -> dict[str, str]:
    result = _run("env")
    assert result.returncode == 0, f"ops/stack env failed (is the stack up?): {result.stderr}"
    exports = dict(re.findall(r"^export ([A-Z_]+)=(\S+)$", result.stdout, flags=re.MULTILINE))
    expected = {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"}
    if WITH_JAEGER:
        expected |= {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "FLYWHEEL_JAEGER_URL"}
    assert set(exports) == expected, result.stdout
    return exports


def _pids(status_output: str) -> list[str]:
    return re.findall(r"running pid=(\d+)", status_output)


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    return _stack_env()


def test_status_reports_both_servers_answering() -> None:
    result = _run("status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^kafka: running pid=\d+ .*answers=yes$", result.stdout, re.MULTILINE)
    managed_pg = re.search(r"^postgres: running pid=\d+ .*answers=yes$", result.stdout, re.M)
    external_pg = re.search(r"^postgres: external DATABASE_URL answers", result.stdout, re.M)
    assert managed_pg or external_pg, result.stdout
    for log_path in re.findall(r"(?:logs|log)=(\S+)", result.stdout):
        assert Path(log_path).is_file(), f"status names a log that does not exist: {log_path}"


def test_env_matches_this_test_process(stack_env: dict[str, str]) -> None:
    host, _, port = stack_env["KAFKA_BOOTSTRAP_SERVERS"].partition(":")
    assert host == "127.0.0.1"
    assert port.isdigit()
    assert stack_env["DATABASE_URL"].startswith("postgresql://")
    for var, value in stack_env.items():
        if var in os.environ:
            assert os.environ[var] == value, f"{var} in the environment differs from ops/stack env"


async def test_kafka_answers_metadata_and_round_trips(stack_env: dict[str, str]) -> None:
    bootstrap = stack_env["KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"ops-stack-{uuid.uuid4().hex[:10]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        brokers = producer.client.cluster.brokers()
        assert [(b.nodeId, f"{b.host}:{b.port}") for b in brokers] == [(1, bootstrap)]
        # auto.create.topics.enable=true on the broker: producing creates the topic.
        await producer.send_and_wait(topic, b"ping", key=b"k")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=20_000, max_records=1)
        records = [record for part in batch.values() for record in part]
        assert [(r.key, r.value) for r in records] == [(b"k", b"ping")]
        await consumer.commit()  # the group coordinator (offsets topic, RF 1) works
    finally:
        await consumer.stop()


async def test_postgres_answers(stack_env: dict[str, str]) -> None:
    conn = await asyncpg.connect(stack_env["DATABASE_URL"], timeout=10)
    try:
        version = await conn.fetchval("SELECT version()")
        assert version.startswith("PostgreSQL ")
        if "@127.0.0.1:" in stack_env["DATABASE_URL"]:
            assert await conn.fetchval("SELECT current_database()") == "flywheel"
    finally:
        await conn.close()


def test_second_up_is_fast_and_idempotent(stack_env: dict[str, str]) -> None:
    before = _run("status")
    started = time.monotonic()
    result = _run("up")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed < SECOND_UP_LIMIT_S, f"ops/stack up took {elapsed:.1f}s on a running stack"
    assert re.search(r"stack up in [0-9.]+s", result.stderr), "up must print its elapsed time"
    assert re.search(r"versions: Apache Kafka 4\.\d+\.\d+, PostgreSQL \d+", result.stderr)
    after = _run("status")
    assert _pids(before.stdout) == _pids(after.stdout), "up restarted a running server"
    assert len(_pids(after.stdout)) >= 1
    assert _stack_env() == stack_env


def _listeners(pid: str) -> list[str]:
    """host:port of every TCP socket ``pid`` listens on (from ss)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]


@pytest.mark.skipif(not WITH_JAEGER, reason="FLYWHEEL_JAEGER=0")
def test_jaeger_takes_otlp_on_loopback_and_answers_queries(stack_env: dict[str, str]) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    status = _run("status").stdout
    found = re.search(r"^jaeger: running pid=(\d+) .*answers=yes$", status, re.MULTILINE)
    assert found, status
    listening = _listeners(found.group(1))
    assert len(listening) == 4, listening  # OTLP gRPC + HTTP, query HTTP + gRPC
    assert all(addr.startswith("127.0.0.1:") for addr in listening), listening

    service = f"ops-stack-{uuid.uuid4().hex[:8]}"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    endpoint = stack_env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    with provider.get_tracer("ops").start_as_current_span("probe") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    url = f"{stack_env['FLYWHEEL_JAEGER_URL']}/api/traces/{trace_id}"
    deadline = time.monotonic() + 20
    while True:
        reply = httpx.get(url, timeout=5)
        if reply.status_code == 200:
            break
        assert time.monotonic() < deadline, f"trace {trace_id} not in Jaeger: {reply.text}"
        time.sleep(0.2)
    (found_trace,) = reply.json()["data"]
    assert [s["operationName"] for s in found_trace["spans"]] == ["probe"]
    assert found_trace["processes"][found_trace["spans"][0]["processID"]]["serviceName"] == service


OUTSIDE_CLUSTERS = Path("/var/lib/dspy-flywheel")


@pytest.mark.skipif(os.geteuid() != 0, reason="clusters outside the state dir need root")
def test_a_new_outside_cluster_prunes_those_whose_state_dir_is_gone(tmp_path: Path) -> None:
    """A deleted state dir's cluster in /var/lib/dspy-flywheel goes when `up` makes a new one;
    a live one, a running one's and one without an owner record stay."""
    tag = uuid.uuid4().hex[:8]
    fakes = {name: OUTSIDE_CLUSTERS / f"pg-test-{name}-{tag}" for name in ("gone", "live", "old")}
    for fake in fakes.values():
        fake.mkdir(parents=True)
    (fakes["gone"] / "owner").write_text(f"/nonexistent/{tag}/postgres\n")
    (fakes["live"] / "owner").write_text(f"{tmp_path}\n")
    home = Path.home() / ".cache" / "dspy-flywheel"  # the postgres user cannot enter it
    state = Path(tempfile.mkdtemp(prefix="prune-test-", dir=home))
    env = {**os.environ, "FLYWHEEL_STATE": str(state), "FLYWHEEL_SECURE": "0"}
    env.pop("DATABASE_URL", None)
    postgres = str(ROOT / "ops" / "postgres.sh")
    try:
        up = subprocess.run(
            [postgres, "up"], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert up.returncode == 0, up.stderr
        assert f"removing the cluster {fakes['gone']}" in up.stderr
        cluster = (state / "postgres" / "cluster").resolve()
        assert cluster.parent == OUTSIDE_CLUSTERS
        assert (cluster / "owner").read_text().strip() == str((state / "postgres").resolve())
        assert not fakes["gone"].exists()
        assert fakes["live"].exists()
        assert fakes["old"].exists()
    finally:
        subprocess.run([postgres, "down"], env=env, capture_output=True, timeout=120, check=False)
        shutil.rmtree((state / "postgres" / "cluster").resolve(), ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
        for fake in fakes.values():
            shutil.rmtree(fake, ignore_errors=True)
