"""PII through the whole running pipeline (issue 15): SDK worker -> Kafka -> collector service
-> PostgreSQL, plus a dead letter and an offline worker's spool.

Values of every leak class found by the issue's pass go into inputs (nested JSON included),
outputs, labels and the feedback ``source``; then every column of every table of the test
schema is scanned raw, the stored examples and join state decrypted, the DLQ topic (values and
headers), the spool files and every log line. No raw value may be found anywhere, and the
scanner is shown to find them where they are (the sealed dead letter, once opened).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import dspy
import pytest
from aiokafka import AIOKafkaProducer

from dspy_flywheel.bus import open_consumer, open_sealed, stop_consumer
from dspy_flywheel.collector.app import run
from dspy_flywheel.collector.pending import open_entry
from dspy_flywheel.collector.settings import CollectorSettings
from dspy_flywheel.contracts.codec import encode
from dspy_flywheel.contracts.events import ExecutionRecorded
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.lm import make_lm
from dspy_flywheel.sdk import WorkerSettings, dspy_worker
from dspy_flywheel.security.crypto import Cipher, EncryptionSettings
from dspy_flywheel.settings import KafkaSettings, PostgresSettings
from dspy_flywheel.store import create_pool
from dspy_flywheel.store.examples import load_training_examples
from dspy_flywheel.store.pool import connect
from tests.fixtures.fake_lm import FakeEngine
from tests.integration.helpers import until, unused_port
from tests.integration.pii_scan import assert_no_raw_pii, pii_pattern

EMAIL = "ines.duarte@mail-example.pt"
PHONE_INTL = "+351 912 345 678"
PHONE_NATIONAL = "04 72 10 33 58"  # after "Call": was half replaced ("Call <PHONE_2> 58")
CARD = "3730 8023 0025 3150"  # Luhn-valid, 16 digits, an Amex prefix of another length
IBAN_PT = "PT60 3976 7179 5795 7617 0328 2"
IBAN_NL = "NL39TRIO9048721160"  # the second IBAN of one sentence was left raw
NAME = "Ines Duarte"
KEY = "ghp_Zq81LmPx0Tr5Wv"  # a vendor prefix with a tail shorter than documented
CPF = "734.618.290-13"
SOURCE_EMAIL = "ruth.okafor@corp-example.com"  # feedback source: was stored in plain text
DLQ_EMAIL = "tomas.berg@dead-letter-example.se"
RAW = [EMAIL, PHONE_INTL, PHONE_NATIONAL, CARD, IBAN_PT, IBAN_NL, NAME, KEY, CPF, SOURCE_EMAIL]
# Compact forms too: a number reformatted on its way must not slip through.
COMPACT = [v.replace(" ", "") for v in (PHONE_INTL, PHONE_NATIONAL, CARD, IBAN_PT)]
PATTERN = pii_pattern([*RAW, *COMPACT, DLQ_EMAIL])


class Reply(dspy.Module):
    """No LM call: the reply quotes the customer's contact details (PII in the outputs)."""

    def forward(self, text: str, customer: dict[str, Any]) -> dspy.Prediction:
        contact = customer["contact"]
        return dspy.Prediction(reply=f"Dear {NAME}, we will call {contact['phones'][0]}.")


ReplyWorker = dspy_worker("pii-reply")(Reply)


def message(n: int) -> str:
    return (
        f"Hi, this is {NAME} (ticket {n}). Call {PHONE_NATIONAL} or mail {EMAIL}. "
        f"Refund to {IBAN_PT} or {IBAN_NL}; card {CARD}; CPF {CPF}. I pasted my key {KEY}."
    )


def customer() -> dict[str, Any]:
    return {
        "contact": {"phones": [PHONE_INTL], "emails": [EMAIL]},
        "note": json.dumps({"e": EMAIL}),
    }


@pytest.fixture
def engine() -> FakeEngine:
    fake = FakeEngine(lambda _m: {"reply": "unused"})
    dspy.configure(lm=make_lm(fake))
    return fake


@pytest.fixture(params=["faust", "kafka"])
async def collector(
    request: pytest.FixtureRequest,
    kafka_settings: KafkaSettings,
    pg_settings: PostgresSettings,
    topics: Topics,
    unique: str,
) -> AsyncIterator[tuple[CollectorSettings, Cipher]]:
    """The collector service (its composition root, ``collector.app.run``) with each engine."""
    keys = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
    settings = CollectorSettings().model_copy(
        update={
            "kafka": kafka_settings,
            "postgres": pg_settings,
            "topic_prefix": topics.prefix,
            "db_schema": f"pii_{unique}",
            "engine": request.param,
            "group_id": f"pii-{unique}",
            "hold_s": 0.2,
            "metrics_port": None,
            "encryption": EncryptionSettings(keys=keys),
        }
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(settings, stop=stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 60)
    yield settings, Cipher.from_settings(settings.encryption)
    stop.set()
    await asyncio.wait_for(task, 60)
    conn = await connect(pg_settings)
    await conn.execute(f'DROP SCHEMA "{settings.db_schema}" CASCADE')
    await conn.close()


async def read_all(kafka: KafkaSettings, topic: str, expected: int) -> list[Any]:
    consumer = await open_consumer(kafka, [topic])
    found: list[Any] = []

    async def enough() -> bool:
        for batch in (await consumer.getmany(timeout_ms=500)).values():
            found.extend(batch)
        return len(found) >= expected

    try:
        await until(enough, f"{expected} records on {topic}")
    finally:
        await stop_consumer(consumer)
    return found


async def test_no_raw_pii_in_tables_dlq_spool_or_logs(
    engine: FakeEngine,
    collector: tuple[CollectorSettings, Cipher],
    kafka_settings: KafkaSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings, cipher = collector
    assert all(PATTERN.search(v) for v in RAW)  # the scanner finds each raw value

    worker = ReplyWorker.create(
        settings=WorkerSettings(
            kafka=kafka_settings,
            topic_prefix=topics.prefix,
            spool_dir=tmp_path / "spool-online",
            spool_key_file=tmp_path / "keys" / "online.key",
            reload=False,
        )
    )
    labeled = [worker(text=message(n), customer=customer()).execution_id for n in range(3)]
    unlabeled = worker(text=message(9), customer=customer()).execution_id  # stays in join state
    for eid in labeled:
        worker.feedback(
            eid, label={"reply": f"Thanks {NAME}, card {CARD}"}, source=f"reviewer:{SOURCE_EMAIL}"
        )

    async def all_sent() -> bool:
        return int(worker.stats()["sent"]) + int(worker.stats()["replayed"]) >= 7

    await until(all_sent, "the worker's 7 events acknowledged by the broker")
    worker.close(10)

    # A record the collector refuses (broken JSON) that carries PII: the dead letter.
    bad = encode(
        ExecutionRecorded(
            worker_id=worker.worker_id,
            worker_type="pii-reply",
            execution_id="bad-1",
            inputs_json='{"text": "write to ' + DLQ_EMAIL + '"',
            outputs_json=None,
            success=False,
            latency_ms=1.0,
            timestamp_ms=1_700_000_000_000,
        ),
    )
    await producer.send_and_wait(
        topics.executions, bad.value, key=worker.worker_id.encode(), headers=bad.headers
    )

    pool = await create_pool(settings.postgres, settings.db_schema)
    try:

        async def stored() -> bool:
            n = await pool.fetchval("SELECT count(*) FROM training_examples WHERE has_label")
            pending = await pool.fetchval("SELECT count(*) FROM collector_pending")
            return n == len(labeled) and pending >= 1

        await until(stored, "3 labeled examples stored, 1 execution pending")
        letters = await read_all(kafka_settings, Topics.dlq(topics.executions), 1)

        # 1. every column of every table, raw (ciphertext, digests, plain columns)
        assert await assert_no_raw_pii(pool, settings.db_schema or "", PATTERN) > 30
        sources = {r[0] for r in await pool.fetch("SELECT label_source FROM training_examples")}
        assert len(sources) == 1  # one reviewer, one placeholder in the worker's numbering
        assert re.fullmatch(r"reviewer:<EMAIL_\d+>", sources.pop())

        # 2. decrypted: stored examples and the join state
        examples = await load_training_examples(pool, cipher, worker.worker_id)
        assert len(examples) == len(labeled)
        content = json.dumps([[e.inputs, e.outputs, e.label] for e in examples])
        assert PATTERN.search(content) is None, PATTERN.search(content)
        for kind in ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "PERSON", "SECRET", "NATIONAL_ID"):
            assert f"<{kind}_" in content, kind
        assert "<IBAN_1> or <IBAN_2>" in content
        for row in await pool.fetch("SELECT * FROM collector_pending"):
            entry = repr(open_entry(cipher, row))
            assert unlabeled in entry
            assert PATTERN.search(entry) is None
    finally:
        await pool.close()

    # 3. the DLQ: value sealed, headers and error text anonymized
    (letter,) = [m for m in letters if dict(m.headers).get("dlq_source")]
    assert PATTERN.search(letter.value.decode("latin-1")) is None
    for name, value in letter.headers:
        assert PATTERN.search(value.decode("latin-1")) is None, name
    original = open_sealed(cipher, letter.value, letter.headers)
    assert original == bad.value  # nothing lost for whoever holds the key
    assert DLQ_EMAIL.encode() in original  # ... and the scanner would have seen it raw

    # 4. the spool of a worker whose broker is down: sealed, owner-only
    offline = ReplyWorker.create(
        settings=WorkerSettings(
            kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{unused_port()}"),
            spool_dir=tmp_path / "spool",
            spool_key_file=tmp_path / "keys" / "offline.key",
            reload=False,
        )
    )
    for n in range(50):
        eid = offline(text=message(n), customer=customer()).execution_id
        offline.feedback(eid, label={"reply": NAME}, source=f"reviewer:{SOURCE_EMAIL}")
    offline.close(5)
    assert offline.stats()["spooled"] == 100
    spool_files = [p for p in (tmp_path / "spool").iterdir() if p.is_file()]
    assert sum(p.stat().st_size for p in spool_files) > 50 * len(message(0))
    assert (tmp_path / "spool").stat().st_mode & 0o777 == 0o700
    for path in spool_files:
        assert path.stat().st_mode & 0o777 == 0o600, path.name
        assert PATTERN.search(path.read_bytes().decode("latin-1")) is None, path.name

    # 5. every log line of the run (collector, SDK, clients)
    assert caplog.records
    leaks = [r for r in caplog.records if PATTERN.search(r.getMessage())]
    assert leaks == [], [(r.name, r.getMessage()[:300]) for r in leaks]
