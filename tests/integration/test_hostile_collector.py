"""Regressions: single records that stopped the collector for good (both engines).

Each of these once made the collector loop on "batch failed; retrying" and store nothing
more. Now each goes to the executions DLQ once, with its reason, and the collector stores the
valid pair sent after it. The collector runs in this process on the real broker and database.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from dspy_flywheel.bus import start_producer
from dspy_flywheel.bus.dlq import KEPT_BODY_BYTES
from dspy_flywheel.bus.letters import read_letters
from dspy_flywheel.collector.app import run
from dspy_flywheel.collector.settings import CollectorSettings
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.security.crypto import EncryptionSettings
from dspy_flywheel.settings import KafkaSettings, PostgresSettings
from dspy_flywheel.store import create_pool
from tests.integration.helpers import until, until_sql
from tests.integration.hostile import (
    dead_letters,
    encoded,
    execution,
    feedback,
    run_cli,
    send_raw,
)
from tests.integration.optimizer_support import ENCRYPTION_KEYS, cipher_for_tests

pytestmark = pytest.mark.timeout(300)
DEEP = "[" * 50_000 + "]" * 50_000


@dataclass
class Running:
    settings: CollectorSettings
    topics: Topics
    task: asyncio.Task[None]
    pool: asyncpg.Pool
    producer: AIOKafkaProducer

    def alive(self) -> None:
        assert not self.task.done(), f"the collector stopped: {self.task}"


@pytest.fixture(scope="module", params=["faust", "kafka"])
async def collector(
    request: pytest.FixtureRequest,
    kafka_settings: KafkaSettings,
    pg_settings: PostgresSettings,
    db_schema: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Running]:
    topics = Topics(f"h{uuid.uuid4().hex[:8]}-", partitions=2)
    settings = CollectorSettings.model_validate(
        {
            "FLYWHEEL_TOPIC_PREFIX": topics.prefix,
            "FLYWHEEL_DB_SCHEMA": db_schema,
            "engine": request.param,
            "group_id": "collector",
            "session_timeout_s": 6,
            "hold_s": 0.2,
            "data_dir": Path(tmp_path_factory.mktemp("collector")),
            "encryption": EncryptionSettings(keys=ENCRYPTION_KEYS),
        }
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(settings, stop=stop, ready=ready))
    await until(lambda: _ready_or_failed(task, ready), "the collector to start", 60)
    pool = await create_pool(pg_settings, db_schema)
    producer = await start_producer(kafka_settings)
    try:
        yield Running(settings, topics, task, pool, producer)
    finally:
        await producer.stop()
        await pool.close()
        stop.set()
        await asyncio.wait_for(task, 60)


async def _ready_or_failed(task: asyncio.Task[None], ready: asyncio.Event) -> bool:
    if task.done():
        task.result()  # raises what stopped it
    return ready.is_set()


def _worker() -> str:
    return f"w-{uuid.uuid4().hex[:8]}"


Case = Callable[[str], tuple[bytes, list[tuple[str, bytes]], str]]


def _case(reason: str, headers: dict[str, bytes] | None = None, **fields: Any) -> Case:
    def build(worker: str) -> tuple[bytes, list[tuple[str, bytes]], str]:
        value, hdrs = encoded("ExecutionRecorded", execution(worker, **fields), **(headers or {}))
        return value, hdrs, reason

    return build


CASES: dict[str, Case] = {
    "event_id header not UTF-8": _case("bad_header", {"event_id": b"\xff\xfe\xfd"}),
    "inputs_json 50,000 deep": _case("too_deep", inputs_json=DEEP),
    "outputs_json 50,000 deep": _case("too_deep", outputs_json=DEEP),
    "worker_id with NUL": lambda w: _case("nul_character", worker_id=w + "\x00x")(w),
    "timestamp_ms 2**62": _case("bad_timestamp", timestamp_ms=2**62),
    "1 MB inputs_json not JSON": _case("invalid_inputs", inputs_json="x" * 1_000_000),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_hostile_record_is_set_aside_and_the_next_pair_is_stored(
    collector: Running, kafka_settings: KafkaSettings, case: str
) -> None:
    c, worker = collector, _worker()
    value, headers, reason = CASES[case](worker)
    bad = await send_raw(c.producer, c.topics.executions, value, headers, worker.encode())
    good = execution(worker)
    for event_type, topic, record in (
        ("ExecutionRecorded", c.topics.executions, good),
        ("FeedbackRecorded", c.topics.feedback, feedback(worker, good["execution_id"])),
    ):
        v, h = encoded(event_type, record)
        await send_raw(c.producer, topic, v, h, worker.encode())
    await until_sql(
        c.pool,
        f"SELECT count(*) FROM training_examples WHERE execution_id = '{good['execution_id']}'",
        lambda n: n == 1,
        alive=c.alive,
    )
    letters = await dead_letters(kafka_settings, c.topics.executions)
    assert letters[bad] == 1
    letter = next(
        x for x in await read_letters(kafka_settings, c.topics.executions) if x.source == bad
    )
    assert letter.header("dlq_reason") == reason
    assert letter.header("dlq_consumer") == "collector"
    kept = letter.original(cipher_for_tests())  # the collector seals its letters (PII)
    assert letter.sealed
    if len(value) > 512 * 1024:  # too big for the DLQ as it was: cut, with its digest
        assert letter.header("dlq_truncated") == str(len(value))
        assert letter.header("dlq_sha256") == hashlib.sha256(value).hexdigest()
        assert kept == value[:KEPT_BODY_BYTES]
    else:
        assert kept == value
    c.alive()


async def test_a_record_the_database_refuses_is_split_off_and_the_rest_is_stored(
    collector: Running, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that fails for one record's sake is split down to that record: only it goes to
    the DLQ (``unwritable``). The refusal is injected where PostgreSQL would raise it."""
    c, worker = collector, _worker()
    poison = execution(worker, execution_id=f"poison-{uuid.uuid4().hex}")
    from dspy_flywheel.collector.sink import Sink

    original = Sink.write

    async def refusing(self: Sink, items: Any, publish: Any) -> Any:
        if any(getattr(i, "execution_id", None) == poison["execution_id"] for i in items):
            raise asyncpg.DataError("invalid input value (injected for this record)")
        return await original(self, items, publish)

    monkeypatch.setattr(Sink, "write", refusing)
    goods = [execution(worker) for _ in range(20)]
    sent = {}
    for record in [*goods[:10], poison, *goods[10:]]:
        v, h = encoded("ExecutionRecorded", record)
        sent[record["execution_id"]] = await send_raw(
            c.producer, c.topics.executions, v, h, worker.encode()
        )
    for record in [*goods, poison]:
        v, h = encoded("FeedbackRecorded", feedback(worker, record["execution_id"]))
        await send_raw(c.producer, c.topics.feedback, v, h, worker.encode())
    ids = ",".join(f"'{g['execution_id']}'" for g in goods)
    await until_sql(
        c.pool,
        f"SELECT count(*) FROM training_examples WHERE execution_id IN ({ids})",
        lambda n: n == len(goods),
        alive=c.alive,
    )

    # the halves without the poison may be stored before its letter is acknowledged: wait for it
    async def poison_letters() -> list[Any]:
        letters = await read_letters(kafka_settings, c.topics.executions)
        return [x for x in letters if x.source == sent[poison["execution_id"]]]

    mine = await until(poison_letters, "the poison's dead letter", alive=c.alive)
    letters = await read_letters(kafka_settings, c.topics.executions)
    assert [x.header("dlq_reason") for x in mine] == ["unwritable"]
    assert not {sent[g["execution_id"]] for g in goods} & {x.source for x in letters}
    c.alive()


async def test_a_fixed_record_replayed_from_the_dlq_joins_its_waiting_feedback(
    collector: Running, kafka_settings: KafkaSettings, db_schema: str
) -> None:
    """Regression: a fixed record replayed with its original event id was skipped as already
    applied, and its feedback waited in collector_pending for ever."""
    c, worker = collector, _worker()
    broken = execution(worker, worker_type="router\x00")
    v, h = encoded("ExecutionRecorded", broken)
    source = await send_raw(c.producer, c.topics.executions, v, h, worker.encode())
    v, h = encoded("FeedbackRecorded", feedback(worker, broken["execution_id"]))
    await send_raw(c.producer, c.topics.feedback, v, h, worker.encode())
    pending = (
        f"SELECT count(*) FROM collector_pending WHERE execution_id = '{broken['execution_id']}'"
    )
    await until_sql(c.pool, pending, lambda n: n == 1, alive=c.alive)
    await until(lambda: _has(kafka_settings, c.topics.executions, source), "the dead letter", 30)
    env = {
        "FLYWHEEL_TOPIC_PREFIX": c.topics.prefix,
        "FLYWHEEL_DB_SCHEMA": db_schema,
        "FLYWHEEL_ENCRYPTION_KEYS": ENCRYPTION_KEYS,  # the letter is sealed: the key opens it
    }
    code, out, err = await run_cli(env, "dlq", "list", "executions")
    assert code == 0, err
    (letter,) = [x for x in json.loads(out) if x["source"] == source]
    assert letter["reason"] == "nul_character"
    offset = str(letter["offset"])
    code, out, _ = await run_cli(env, "dlq", "replay", "executions", offset)
    assert code == 2  # unfixed, it would be refused again: not sent
    assert "NUL" in out
    code, out, err = await run_cli(
        env, "dlq", "replay", "executions", offset, "--set", 'worker_type="router"'
    )
    assert code == 0, out + err
    replayed = json.loads(out)
    assert replayed["event_id"] != letter["event_id"]
    stored = (
        "SELECT count(*) FROM training_examples"
        f" WHERE execution_id = '{broken['execution_id']}' AND has_label"
    )
    await until_sql(c.pool, stored, lambda n: n == 1, alive=c.alive)
    assert await c.pool.fetchval(pending) == 0


async def _has(kafka: KafkaSettings, topic: str, source: str) -> bool:
    return (await dead_letters(kafka, topic))[source] == 1
