"""Crash consistency of the collector: SIGKILLs, a PostgreSQL restart and a broker restart.

    python tests/bench/crash_consistency.py [--pairs 10000] [--engine faust|kafka]
                                            [--malformed 200] [--state DIR]

Starts a PRIVATE stack (Kafka + PostgreSQL from ``ops/``, in its own ``FLYWHEEL_STATE``
directory on free ports; a developer's running stack is never touched), produces ``--pairs``
execution/feedback pairs (some feedback first, PII in one of three) plus ``--malformed`` bad
records, and runs the collector as a child process while, at fixed shares of the stream
processed, it

    SIGKILLs the collector (and restarts it)  at 10 %, 40 % and 70 %
    restarts PostgreSQL (pg_ctl stop + start) at 25 %, the collector still running
    restarts the broker (SIGTERM + start)      at 55 %, the collector still running

then waits for every event id to be processed. Last lines::

    crash_consistency pairs=10000 kills=3 pg_restarts=1 broker_restarts=1 seconds=...
    stored=10000 duplicates=0 lost=0 dlq=200/200 pending=0

``stored``: distinct execution ids in ``training_examples``; ``duplicates``: rows beyond one
per execution id; ``lost``: produced execution ids with no row; ``dlq``: malformed records
found in the DLQs (by source) over those sent. The stack is stopped and its state removed at
the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import repo_root  # first: the repository root, for tests.*
from tests.integration.test_collector_sigkill import (
    CollectorProcess,
    build_messages,
    collector_env,
    send_messages,
)

from dspy_flywheel.bus import ensure_topics
from dspy_flywheel.bus.letters import read_letters
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.settings import KafkaSettings, PostgresSettings
from dspy_flywheel.store import apply_migrations, create_pool
from dspy_flywheel.store.pool import connect

OPS = Path(repo_root.ROOT) / "ops"
PROCESSED = "SELECT count(*) FROM collector_processed_events"


def ops(state: Path, *args: str) -> str:
    """Run an ``ops/`` script on the private stack; its stdout."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")
    }
    env.update(FLYWHEEL_STATE=str(state), FLYWHEEL_JAEGER="0")
    done = subprocess.run(
        [str(OPS / args[0]), *args[1:]], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ops/{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def stack_env(state: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for script in ("kafka.sh", "postgres.sh"):
        for line in ops(state, script, "env").splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            out[name] = value.strip("'\"")
    return out


async def processed(pool: asyncpg.Pool) -> int:
    """Events processed so far; 0 while the database restarts (the pool reconnects)."""
    try:
        return int(await asyncio.wait_for(pool.fetchval(PROCESSED), 10))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return 0


async def until_processed(
    pool: asyncpg.Pool, at_least: int, proc: CollectorProcess, within_s: float = 900
) -> int:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if proc.proc is None or proc.proc.poll() is not None:
            raise RuntimeError(f"the collector died:\n{proc.log.read_text()[-3000:]}")
        n = await processed(pool)
        if n >= at_least:
            return n
        await asyncio.sleep(0.2)
    raise TimeoutError(f"not {at_least} events processed in {within_s:.0f} s")


async def until_started(proc: CollectorProcess, starts: int, within_s: float = 300) -> None:
    deadline = time.monotonic() + within_s
    while proc.log.read_text(errors="replace").count(" consuming ") < starts:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the collector did not start:\n{proc.log.read_text()[-3000:]}")
        await asyncio.sleep(0.5)


async def bench(args: argparse.Namespace, state: Path) -> None:
    ops(state, "kafka.sh", "up")
    ops(state, "postgres.sh", "up")
    env = stack_env(state)
    os.environ.update(env)
    kafka, pg = KafkaSettings(), PostgresSettings()
    unique = f"cc{os.getpid()}"
    topics = Topics(f"{unique}-", partitions=3)
    await ensure_topics(kafka, topics)
    schema = f"crash_{unique}"
    conn = await connect(pg)
    await apply_migrations(conn, schema)
    await conn.close()
    data, messages = build_messages(topics, unique, args.pairs, args.malformed)
    expected_dlq = await send_messages(kafka, messages)
    total = len(messages)
    key = base64.b64encode(os.urandom(32)).decode()
    work = state / "collector"
    work.mkdir(exist_ok=True)
    proc = CollectorProcess(
        {**collector_env(args.engine, topics, schema, unique, work, key), **env},
        work / "collector.log",
    )
    pool = await create_pool(pg, schema)
    started = time.monotonic()
    kills = pg_restarts = broker_restarts = 0
    try:
        proc.start()
        last = 0
        for share, action in (
            (0.10, "kill"),
            (0.25, "postgres"),
            (0.40, "kill"),
            (0.55, "broker"),
            (0.70, "kill"),
        ):
            # each fault hits a collector that has been working since the last one
            n = last = await until_processed(
                pool, max(int(total * share), last + total // 20), proc
            )
            print(f"{time.monotonic() - started:6.1f}s  {n}/{total} processed: {action}")
            if action == "kill":
                proc.kill9()
                proc.start()
                kills += 1
            elif action == "postgres":
                ops(state, "postgres.sh", "down")
                ops(state, "postgres.sh", "up")
                pg_restarts += 1
            else:
                ops(state, "kafka.sh", "down")
                ops(state, "kafka.sh", "up")
                broker_restarts += 1
        await until_processed(pool, total, proc)
        seconds = time.monotonic() - started
        await until_started(proc, kills + 1)  # stop a collector that finished starting
        assert proc.stop() == 0, proc.log.read_text()[-3000:]
        rows = await pool.fetch(
            "SELECT execution_id, count(*) AS n FROM training_examples GROUP BY execution_id"
        )
        stored = {r["execution_id"] for r in rows}
        duplicates = sum(r["n"] - 1 for r in rows)
        lost = len(set(data.execution_ids) - stored)
        pending = await pool.fetchval("SELECT count(*) FROM collector_pending")
        sources = {
            letter.source
            for topic in (topics.executions, topics.feedback)
            for letter in await read_letters(kafka, topic)
        }
        found = len(set(expected_dlq) & sources)
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.proc.kill()
        await pool.close()
    print(
        f"crash_consistency pairs={args.pairs} kills={kills} pg_restarts={pg_restarts} "
        f"broker_restarts={broker_restarts} seconds={seconds:.0f} "
        f"events_per_s={total / seconds:.0f} engine={args.engine}"
    )
    print(
        f"stored={len(stored)} duplicates={duplicates} lost={lost} "
        f"dlq={found}/{len(expected_dlq)} pending={pending}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--malformed", type=int, default=200)
    parser.add_argument("--engine", choices=["faust", "kafka"], default="faust")
    parser.add_argument("--state", type=Path, default=None, help="private stack state dir")
    parser.add_argument("--keep", action="store_true", help="leave the private stack running")
    args = parser.parse_args()
    state = args.state or Path(tempfile.mkdtemp(prefix="flywheel-crash-"))
    try:
        asyncio.run(bench(args, state))
    finally:
        if not args.keep:
            for script in ("kafka.sh", "postgres.sh"):
                try:
                    ops(state, script, "down")
                except RuntimeError as exc:
                    print(exc, file=sys.stderr)
            if args.state is None:
                shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
