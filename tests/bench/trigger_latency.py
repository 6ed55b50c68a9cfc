"""Decision latency of the trigger service on the real broker and database.

Measures, over 20 trials, the time from producing the feedback event whose outcome makes a
worker's accuracy cross its threshold (with the default debounce: the 2nd low evaluation) to the
``OptimizationRequested`` arriving on the topic. The service runs as a real subprocess
(``python -m dspy_flywheel.trigger``). Baseline, same run and broker: raw produce -> consume
round trip of one small message.

Run: ``ops/stack up && eval "$(ops/stack env)" && .venv/bin/python tests/bench/trigger_latency.py``
Last line: ``trigger_latency p50_ms=... p99_ms=...``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from dspy_flywheel.bus import ensure_topics, publish, start_producer
from dspy_flywheel.contracts.codec import decode
from dspy_flywheel.contracts.events import FeedbackRecorded
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.settings import KafkaSettings, PostgresSettings
from dspy_flywheel.store import apply_migrations
from dspy_flywheel.store.pool import connect
from dspy_flywheel.trigger import TriggerPolicyConfig, write_config
from dspy_flywheel.trigger.store import fetch_views


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> str:
    return (
        f"p50_ms={percentile(values, 50):.1f} p99_ms={percentile(values, 99):.1f} "
        f"min_ms={min(values):.1f} max_ms={max(values):.1f}"
    )


async def baseline(kafka: KafkaSettings, topic: str, trials: int) -> list[float]:
    """Raw round trip: send_and_wait one message, time until a waiting consumer has it."""
    producer = AIOKafkaProducer(
        **kafka.client_kwargs(), acks="all", linger_ms=5, enable_idempotence=True
    )
    consumer = AIOKafkaConsumer(
        topic,
        **kafka.client_kwargs(),
        group_id=None,
        auto_offset_reset="latest",
        fetch_max_wait_ms=100,
    )
    await producer.start()
    await consumer.start()
    try:
        await consumer.seek_to_end()
        samples = []
        for i in range(trials + 2):  # two warm-up rounds
            t0 = time.perf_counter()
            await producer.send_and_wait(topic, f"ping-{i}".encode())
            await consumer.getone()
            if i >= 2:
                samples.append((time.perf_counter() - t0) * 1000)
        return samples
    finally:
        await consumer.stop()
        await producer.stop()


class RequestArrivals:
    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.seen: dict[str, float] = {}
        self.records: dict[str, dict[str, object]] = {}
        self.consumer = AIOKafkaConsumer(
            topic,
            **kafka.client_kwargs(),
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for msg in self.consumer:
            record = decode(msg.value, msg.headers).event.to_record()
            self.seen.setdefault(record["worker_id"], time.perf_counter())
            self.records.setdefault(record["worker_id"], record)

    async def wait_for(self, worker: str, timeout_s: float = 30) -> float:
        end = time.perf_counter() + timeout_s
        while worker not in self.seen:
            if time.perf_counter() > end:
                raise TimeoutError(f"no request for {worker}")
            await asyncio.sleep(0.001)
        return self.seen[worker]

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.consumer.stop()


async def feedback(
    producer: AIOKafkaProducer, topics: Topics, worker: str, n: int, correct: bool
) -> None:
    record = FeedbackRecorded(
        execution_id=f"{worker}-{n}",
        worker_id=worker,
        label=None,
        score=1.0 if correct else 0.0,
        source="bench",
        timestamp_ms=int(time.time() * 1000),
    )
    await publish(producer, topics.feedback, worker, record)


async def wait_labeled(
    pg: PostgresSettings, schema: str, scope: str, worker: str, total: int
) -> None:
    conn = await connect(pg, schema)
    try:
        end = time.perf_counter() + 30
        while True:
            view = (await fetch_views(conn, scope, worker)).get(worker, {})
            if view.get("labeled_total") == total:
                return
            if time.perf_counter() > end:
                raise TimeoutError(f"{worker}: labels not processed: {view}")
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


def _read(path: Path) -> str:
    return path.read_text()


async def start_service(topics: Topics, schema: str, log_path: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "FLYWHEEL_TOPIC_PREFIX": topics.prefix, "FLYWHEEL_DB_SCHEMA": schema}
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dspy_flywheel.trigger", env=env, stdout=log, stderr=log
        )
    end = time.perf_counter() + 60
    while "trigger service ready" not in (text := _read(log_path)):
        if proc.returncode is not None or time.perf_counter() > end:
            raise RuntimeError(f"trigger service did not start:\n{text[-2000:]}")
        await asyncio.sleep(0.1)
    return proc


async def main(trials: int) -> None:
    kafka, pg = KafkaSettings(), PostgresSettings()
    run_id = uuid.uuid4().hex[:8]
    topics = Topics(prefix=f"bench-{run_id}-")
    schema = f"bench_{run_id}"
    await ensure_topics(kafka, topics)
    conn = await connect(pg)
    await apply_migrations(conn, schema)
    await conn.close()
    workdir = Path(tempfile.mkdtemp(prefix="trigger-bench-"))
    workers = [f"bench-worker-{i}" for i in range(trials)]
    for worker in workers:
        await write_config(
            kafka,
            topics.trigger_config,
            TriggerPolicyConfig(
                worker_id=worker,
                policy="performance",
                threshold=0.8,
                window_size=10,
                min_examples=10,
                cooldown_seconds=600,
            ),
        )
    proc = await start_service(topics, schema, workdir / "trigger.log")
    producer = await start_producer(kafka)
    arrivals = RequestArrivals(kafka, topics.optimization_requests)
    await arrivals.start()
    try:
        base = await baseline(kafka, topics.alerts, trials)
        samples = []
        for worker in workers:
            # 8 right + 3 wrong: accuracy 0.8 then 0.7 (first low evaluation, debounced)
            outcomes = [True] * 8 + [False] * 3
            for n, correct in enumerate(outcomes):
                await feedback(producer, topics, worker, n, correct)
            await wait_labeled(pg, schema, topics.prefix, worker, len(outcomes))
            assert worker not in arrivals.seen, "fired before the crossing event"
            t0 = time.perf_counter()
            await feedback(producer, topics, worker, len(outcomes), False)  # the crossing one
            samples.append((await arrivals.wait_for(worker) - t0) * 1000)
            evidence = json.loads(str(arrivals.records[worker]["evidence_json"]))
            assert evidence["labeled_total"] == len(outcomes) + 1, evidence  # the timed event
            print(f"trial {len(samples):2d} {worker}: {samples[-1]:.1f} ms", flush=True)
    finally:
        await arrivals.stop()
        await producer.stop()
        proc.terminate()
        await proc.wait()
        conn = await connect(pg)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    print(f"baseline produce->consume round trip ({len(base)} trials): {summary(base)}")
    print(f"trigger feedback->request ({len(samples)} trials): {summary(samples)}")
    ratio = percentile(samples, 50) / percentile(base, 50)
    print(f"ratio p50 trigger/baseline: {ratio:.1f}x (target p50 < 2000 ms)")
    print(
        f"trigger_latency p50_ms={percentile(samples, 50):.1f} p99_ms={percentile(samples, 99):.1f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    asyncio.run(main(parser.parse_args().trials))
