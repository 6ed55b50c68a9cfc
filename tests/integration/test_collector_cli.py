"""``flywheel collector run`` as a subprocess, live policy changes through
``flywheel collector set-policy``, drop counters through ``flywheel collector drops``."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from dspy_flywheel.bus import publish, start_producer
from dspy_flywheel.contracts.events import ExecutionRecorded, FeedbackRecorded
from dspy_flywheel.contracts.ids import new_id
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.settings import KafkaSettings, PostgresSettings
from dspy_flywheel.store import apply_migrations, create_pool
from dspy_flywheel.store.pool import connect
from tests.integration.helpers import tail, until_sql


@pytest.fixture
async def pool(pg_settings: PostgresSettings, unique: str) -> AsyncIterator[asyncpg.Pool]:
    schema = f"cli_{unique}"
    conn = await connect(pg_settings)
    await apply_migrations(conn, schema)
    pool = await create_pool(pg_settings, schema)
    yield pool
    await pool.close()
    await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    await conn.close()


def start_collector(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dspy_flywheel.cli", "collector", "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_run_policy_and_drops_through_the_cli(
    kafka_settings: KafkaSettings,
    topics: Topics,
    pool: asyncpg.Pool,
    unique: str,
    tmp_path: Path,
) -> None:
    schema = await pool.fetchval("SELECT current_schema()")
    env = {
        **os.environ,
        "FLYWHEEL_TOPIC_PREFIX": topics.prefix,
        "FLYWHEEL_DB_SCHEMA": schema,
        "FLYWHEEL_COLLECTOR_GROUP_ID": f"cli-{unique}",
        "FLYWHEEL_COLLECTOR_POLICY_REFRESH_S": "0.2",
        "FLYWHEEL_COLLECTOR_HOLD_S": "0.5",
        "FLYWHEEL_COLLECTOR_DATA_DIR": str(tmp_path / "data"),
        "FLYWHEEL_ENCRYPTION_KEYS": f"k1:{base64.b64encode(os.urandom(32)).decode()}",
    }

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "dspy_flywheel.cli", *args],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        return done.stdout.decode()

    log = tmp_path / "collector.log"
    proc = start_collector(env, log)
    producer = await start_producer(kafka_settings)
    worker = f"w{unique}"

    async def pair(score: float, *, success: bool = True) -> None:
        eid = new_id()
        await publish(
            producer,
            topics.executions,
            worker,
            ExecutionRecorded(
                worker_id=worker,
                worker_type="triage",
                execution_id=eid,
                inputs_json=json.dumps({"ticket": f"ticket {eid}"}),
                outputs_json=json.dumps({"category": "billing"}) if success else None,
                success=success,
                latency_ms=3.0,
                timestamp_ms=int(time.time() * 1000),
            ),
        )
        await publish(
            producer,
            topics.feedback,
            worker,
            FeedbackRecorded(
                execution_id=eid,
                worker_id=worker,
                label="billing",
                score=score,
                timestamp_ms=int(time.time() * 1000),
            ),
        )

    async def reaches(sql: str, n: int) -> None:
        await until_sql(pool, sql, lambda value: value == n, 90, context=lambda: tail(log))

    examples = "SELECT count(*) FROM training_examples"
    try:
        for _ in range(5):
            await pair(0.2)
        await pair(1.0, success=False)
        await reaches(examples, 5)

        cli("collector", "set-policy", "--worker", worker, "--min-score", "0.5")
        shown = json.loads(cli("collector", "policy", "--worker", worker))
        assert shown["min_score"] == 0.5
        assert shown["accept_unlabeled_success"] is False
        await asyncio.sleep(0.5)  # the running collector reloads policies every 0.2 s
        for _ in range(3):
            await pair(0.2)
        await pair(0.9)
        await reaches(examples, 6)
        await reaches("SELECT count FROM collector_drops WHERE reason = 'low_score'", 3)

        drops = cli("collector", "drops", "--worker", worker).splitlines()
        counts = {line.split()[1]: int(line.split()[2]) for line in drops}
        assert counts == {"failed": 1, "feedback_for_dropped": 1, "low_score": 3}
    finally:
        await producer.stop()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, tail(log)
