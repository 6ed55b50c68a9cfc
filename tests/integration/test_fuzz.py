"""Fuzz: every consumed topic gets thousands of mutated records while all services run.

The collector, trigger and optimizer run as child processes (their real entry points), and a
worker with hot reload runs in this process. Each consumed topic receives
``FLYWHEEL_FUZZ_RECORDS`` (default 2,000) mutants of valid records (``fuzz_records``: about
70 % bad by construction, two of them ~900 KB). Afterwards:

* every service is still running;
* every bad record is in its topic's DLQ exactly once (found by its coordinates), and no
  valid one is;
* a batch of valid records sent after the fuzz is fully processed (examples stored, a job
  queued, a config and a status applied by the trigger, an ack recorded, a program served).

``FLYWHEEL_FUZZ_SEED`` repeats a run (the seed is printed).
"""

from __future__ import annotations

import base64
import os
import random
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import dspy
import pytest
from aiokafka import AIOKafkaProducer

from dspy_flywheel.bus import publish, start_producer, stop_producer
from dspy_flywheel.contracts.events import (
    ExecutionRecorded,
    FeedbackRecorded,
    OptimizationRequested,
    OptimizationStatusChanged,
    ProgramAcknowledged,
    TriggerConfig,
)
from dspy_flywheel.contracts.topics import DLQ_OWNERS, Topics
from dspy_flywheel.demo.services import ServiceGroup
from dspy_flywheel.lm import make_lm
from dspy_flywheel.sdk import Worker, WorkerSettings, dspy_worker
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.store import jobs
from dspy_flywheel.trigger.store import fetch_views
from tests.fixtures.fake_lm import FakeEngine
from tests.fixtures.sdk_worker import wait_ready
from tests.integration.fuzz_records import EVENT_TYPES, KINDS, Mutant, base_record, mutants
from tests.integration.helpers import program_updated_event, tail, until, until_sql
from tests.integration.hostile import (
    dead_letters,
    encoded,
    execution,
    feedback,
    request,
    send_raw,
)
from tests.integration.test_sdk_reload import Classify

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
RECORDS = int(os.environ.get("FLYWHEEL_FUZZ_RECORDS", "2000"))
SEED = int(os.environ.get("FLYWHEEL_FUZZ_SEED", str(random.SystemRandom().randrange(10**6))))
ROOT = Path(__file__).resolve().parents[2]
READY = {
    "collector": "consuming",
    "trigger": "trigger service ready",
    "optimizer": "starting",
    "rollout": "rollout service ready",
}


RouterWorker = dspy_worker("fuzz-router")(Classify)


@pytest.fixture
def services(topics: Topics, db_schema: str, tmp_path: Path) -> Iterator[ServiceGroup]:
    env = {
        "FLYWHEEL_TOPIC_PREFIX": topics.prefix,
        "FLYWHEEL_DB_SCHEMA": db_schema,
        "FLYWHEEL_ENCRYPTION_KEYS": "fz:" + base64.b64encode(os.urandom(32)).decode(),
        "FLYWHEEL_ENCRYPTION_ACTIVE_KEY": "fz",
        "FLYWHEEL_COLLECTOR_HOLD_S": "0.2",
        "FLYWHEEL_OPTIMIZER_DATASET_WAIT_S": "0",
        "FLYWHEEL_TRIGGER_TICK_SECONDS": "0.5",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    group = ServiceGroup(env, tmp_path / "logs")
    group.start()
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
def worker(kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path) -> Iterator[Worker]:
    dspy.configure(lm=make_lm(FakeEngine(lambda _m: {"label": "billing"})))
    w = RouterWorker.create(
        settings=WorkerSettings(
            kafka=kafka_settings, topic_prefix=topics.prefix, spool_dir=tmp_path / "spool"
        )
    )
    assert wait_ready(w, 60), "the worker did not catch up with program-updated"
    yield w
    w.close(5)


@pytest.fixture
async def fuzz_producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    # records up to ~1 MB: the two "too big" mutants per topic must go out as they are
    producer = await start_producer(kafka_settings, linger_ms=20, max_request_size=2 * 2**20)
    yield producer
    await stop_producer(producer)


def alive(services: ServiceGroup) -> None:
    dead = services.dead()
    assert not dead, {n: tail(services.log_dir / f"{n}.log") for n in dead}


async def send_all(
    producer: AIOKafkaProducer, topics: Topics, batch: list[Mutant]
) -> list[tuple[Mutant, str]]:
    futures = [
        (m, await producer.send(f"{topics.prefix}{m.kind}", m.value, key=m.key, headers=m.headers))
        for m in batch
    ]
    sent = []
    for m, future in futures:
        meta = await future
        sent.append((m, f"{meta.topic}:{meta.partition}:{meta.offset}"))
    return sent


async def test_every_consumer_survives_thousands_of_mutated_records(
    services: ServiceGroup,
    worker: Worker,
    fuzz_producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    topics: Topics,
    db_pool: asyncpg.Pool,
) -> None:
    print(f"\nfuzz seed {SEED}: {RECORDS} records per topic, {len(KINDS)} topics")
    started = time.monotonic()
    for name, marker in READY.items():
        log = services.log_dir / f"{name}.log"
        await until(
            lambda log=log, marker=marker: _logged(log, marker),
            f"{name} to start",
            120,
            alive=lambda: alive(services),
        )
    rng = random.Random(SEED)
    fz = [f"fz-{i}" for i in range(6)]
    # rollout decisions and commands stay off the live worker: its program is checked last
    batch = [
        m
        for kind in KINDS
        for m in mutants(kind, RECORDS, rng, fz if "rollout" in kind else [*fz, "fuzz-router"])
    ]
    rng.shuffle(batch)
    sent = await send_all(fuzz_producer, topics, batch)
    sent_s = time.monotonic() - started
    expected = {kind: {src for m, src in sent if m.kind == kind and m.bad} for kind in KINDS}
    valid = {kind: {src for m, src in sent if m.kind == kind and not m.bad} for kind in KINDS}

    for kind in KINDS:
        topic = f"{topics.prefix}{kind}"

        async def all_in(topic: str = topic, kind: str = kind) -> bool:
            letters = await dead_letters(kafka_settings, topic)
            return sum(letters.values()) >= len(expected[kind])

        await until(
            all_in,
            f"{kind}'s bad records in its DLQ",
            600,
            every_s=2.0,
            alive=lambda: alive(services),
        )
        letters = await dead_letters(kafka_settings, topic)
        extra = set(letters) - expected[kind]
        missing = expected[kind] - set(letters)
        twice = {s: n for s, n in letters.items() if n != 1}
        how = {src: m.how for m, src in sent}
        assert not missing, f"{kind}: not dead-lettered: {[how[s] for s in list(missing)[:10]]}"
        assert not extra, (
            f"{kind}: valid but dead-lettered: {[how.get(s) for s in list(extra)[:10]]}"
        )
        assert not twice, f"{kind}: dead-lettered more than once: {list(twice.items())[:10]}"
        assert not valid[kind] & set(letters)
        print(f"{kind}: {len(expected[kind])} bad in its DLQ once each, {len(valid[kind])} valid")
    alive(services)
    fuzzed_s = time.monotonic() - started
    await valid_batch_is_processed(services, worker, kafka_settings, topics, db_pool)
    alive(services)
    print(
        f"fuzz: sent {len(sent)} in {sent_s:.0f}s, all DLQs complete at {fuzzed_s:.0f}s, "
        f"valid batch processed at {time.monotonic() - started:.0f}s"
    )


async def _logged(log: Path, marker: str) -> bool:
    return marker in tail(log, 10**6)


async def valid_batch_is_processed(
    services: ServiceGroup,
    worker: Worker,
    kafka: KafkaSettings,
    topics: Topics,
    pool: asyncpg.Pool,
) -> None:
    """After the fuzz, valid records of every topic take effect."""
    producer = await start_producer(kafka)
    check = {"alive": lambda: alive(services)}
    try:
        owner = "after-fuzz"
        pairs = [execution(owner) for _ in range(50)]
        for record in pairs:
            await publish(producer, topics.executions, owner, ExecutionRecorded.from_record(record))
            fb = feedback(owner, record["execution_id"])
            await publish(producer, topics.feedback, owner, FeedbackRecorded.from_record(fb))
        job = request(owner)
        await publish(
            producer, topics.optimization_requests, owner, OptimizationRequested.from_record(job)
        )
        config = _config(owner, threshold=0.37)
        await publish(producer, topics.trigger_config, owner, TriggerConfig.from_record(config))
        other = "after-fuzz-status"  # its own worker: the real job's statuses come for `owner`
        status = {
            "job_id": "after-fuzz-job",
            "worker_id": other,
            "status": "running",
            "progress": 0.1,
            "message": None,
            "details_json": "{}",
            "timestamp_ms": int(time.time() * 1000),
        }
        await publish(
            producer,
            topics.optimization_status,
            owner,
            OptimizationStatusChanged.from_record(status),
        )
        ack = {
            "worker_id": owner,
            "instance_id": "after-fuzz-instance",
            "version": 3,
            "status": "serving",
            "reason": None,
            "timestamp_ms": int(time.time() * 1000),
        }
        await publish(producer, topics.program_acks, owner, ProgramAcknowledged.from_record(ack))
        update = program_updated_event("fuzz-router", 2**30, Classify())
        await publish(producer, topics.program_updated, "fuzz-router", update)

        ids = ",".join(f"'{r['execution_id']}'" for r in pairs)
        sql = f"SELECT count(*) FROM training_examples WHERE execution_id IN ({ids})"
        await until_sql(pool, sql, lambda n: n == len(pairs), 120, **check)

        async def queued() -> bool:
            return await jobs.get(pool, job["job_id"]) is not None

        await until(queued, "the valid request's job", 120, **check)

        seen: dict[str, Any] = {}

        async def applied() -> bool:
            views = await fetch_views(pool, topics.prefix)
            seen.update(views.get(owner, {}))
            config_ok = (seen.get("config") or {}).get("threshold") == 0.37
            status_ok = views.get(other, {}).get("last_status") == "after-fuzz-job:running"
            return config_ok and status_ok

        await until(
            applied,
            "the trigger applying the valid config and status",
            180,
            context=lambda: f"view: {seen}\ntrigger log: {tail(services.log_dir / 'trigger.log')}",
            **check,
        )
        acked = "SELECT count(*) FROM program_acks WHERE instance_id = 'after-fuzz-instance'"
        await until_sql(pool, acked, lambda n: n == 1, 120, **check)

        async def served() -> bool:
            return worker.version == 2**30

        await until(served, "the worker serving the valid program", 120, **check)
        await sentinels_follow(producer, kafka, topics, owner, check)
    finally:
        await stop_producer(producer)


async def sentinels_follow(
    producer: AIOKafkaProducer,
    kafka: KafkaSettings,
    topics: Topics,
    owner: str,
    check: dict[str, Any],
) -> None:
    """The rollout topics (one partition each): a valid record, then a bad one; once the bad
    one is in the DLQ, its consumer has handled the valid one before it (and kept it out)."""
    for kind in ("program-rollouts", "rollout-config", "rollout-commands"):
        topic = f"{topics.prefix}{kind}"
        value, headers = encoded(EVENT_TYPES[kind], base_record(kind, owner))
        valid = await send_raw(producer, topic, value, headers, owner.encode())
        sentinel = await send_raw(producer, topic, b"sentinel", [], owner.encode())

        async def past(topic: str = topic, sentinel: str = sentinel) -> bool:
            return (await dead_letters(kafka, topic))[sentinel] == 1

        await until(past, f"{kind}'s consumer past the valid record", 120, **check)
        assert valid not in await dead_letters(kafka, topic)


def _config(worker: str, **changes: Any) -> dict[str, Any]:
    record = base_record("trigger-config", worker)
    record.update(changes)
    return record


def test_the_generator_covers_every_consumed_topic() -> None:
    assert set(KINDS) == set(EVENT_TYPES) == set(DLQ_OWNERS)
    assert len(KINDS) == 10  # seven of the first design, three of the rollout service
