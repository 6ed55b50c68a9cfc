"""Datasets on the real PostgreSQL: JSONL export -> import into an empty schema through the
``flywheel dataset`` CLI, retention policies, snapshots and key rotation."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg
import pytest

from dspy_flywheel.collector.core import Collector
from dspy_flywheel.collector.events import RawMessage, Rejected
from dspy_flywheel.collector.maintenance import apply_retention, rekey
from dspy_flywheel.collector.policy import PolicyBook, WorkerPolicy, set_policy
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.security.crypto import Cipher, DecryptionFailed, KeyNotFound
from dspy_flywheel.settings import PostgresSettings
from dspy_flywheel.store import apply_migrations, create_pool
from dspy_flywheel.store.datasets import create_snapshot, export_records
from dspy_flywheel.store.examples import load_training_examples
from dspy_flywheel.store.pool import connect
from tests.fixtures.synthetic import make_events

TOPICS = Topics("ds-")


class Schemas:
    def __init__(self, pg: PostgresSettings, unique: str) -> None:
        self.pg, self.unique, self.created = pg, unique, []

    async def new(self, suffix: str) -> tuple[str, asyncpg.Pool]:
        name = f"ds_{self.unique}_{suffix}"
        conn = await connect(self.pg)
        try:
            await apply_migrations(conn, name)
        finally:
            await conn.close()
        pool = await create_pool(self.pg, name)
        self.created.append((name, pool))
        return name, pool


@pytest.fixture
async def schemas(pg_settings: PostgresSettings, unique: str) -> AsyncIterator[Schemas]:
    s = Schemas(pg_settings, unique)
    yield s
    conn = await connect(pg_settings)
    for name, pool in s.created:
        await pool.close()
        await conn.execute(f'DROP SCHEMA "{name}" CASCADE')
    await conn.close()


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


async def collect(
    pool: asyncpg.Pool, cipher: Cipher, n: int, *, unlabeled: int = 0, workers: int = 2
) -> list[str]:
    """Store ``n`` examples through the collector core (``unlabeled`` without feedback)."""

    async def no_dlq(rejects: Sequence[Rejected]) -> None:
        raise AssertionError(rejects)

    policies = PolicyBook(WorkerPolicy(accept_unlabeled_success=True), refresh_s=0)
    collector = Collector(pool, cipher, policies, no_dlq, TOPICS)
    data = make_events(n, workers=workers, pii_every=2)
    raws = []
    for i, (e, f, k) in enumerate(zip(data.executions, data.feedback, data.keys, strict=True)):
        raws.append(RawMessage(TOPICS.executions, 0, i, k.encode(), e.value, e.headers))
        if i >= unlabeled:
            raws.append(RawMessage(TOPICS.feedback, 0, i, k.encode(), f.value, f.headers))
    await collector.process(raws)
    await collector.flush()
    return data.pii_values


def flywheel(*args: str, schema: str, keys: str, stdin: bytes | None = None) -> str:
    env = {**os.environ, "FLYWHEEL_DB_SCHEMA": schema, "FLYWHEEL_ENCRYPTION_KEYS": keys}
    env.pop("FLYWHEEL_ENCRYPTION_ACTIVE_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", "dspy_flywheel.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return done.stdout.decode()


async def test_export_import_round_trip_into_an_empty_schema(
    schemas: Schemas,
    tmp_path: Path,
) -> None:
    source_name, source = await schemas.new("src")
    key_a = f"a:{_key()}"
    cipher_a = Cipher({"a": base64.b64decode(key_a[2:])})
    pii = await collect(source, cipher_a, 60, unlabeled=10)
    before = await export_records(source, cipher_a)
    assert len(before) == 60

    dump = tmp_path / "examples.jsonl"
    flywheel("dataset", "export", "--out", str(dump), schema=source_name, keys=key_a)
    text = dump.read_text()
    assert len(text.splitlines()) == 60
    assert not any(value in text for value in pii)  # exports hold anonymized content only
    assert "<EMAIL_" in text

    target_name, target = await schemas.new("dst")
    key_b = f"b:{_key()}"  # another installation, another key
    out = flywheel("dataset", "import", str(dump), schema=target_name, keys=key_b)
    assert "inserted 60" in out
    out = flywheel("dataset", "import", str(dump), schema=target_name, keys=key_b)
    assert "inserted 0" in out  # idempotent by event id

    cipher_b = Cipher({"b": base64.b64decode(key_b[2:])})
    after = await export_records(target, cipher_b)
    assert [r.to_line() for r in after] == [r.to_line() for r in before]
    for worker in ("triage-0", "triage-1"):
        old = await load_training_examples(source, cipher_a, worker)
        new = await load_training_examples(target, cipher_b, worker)
        assert [
            (e.execution_id, e.inputs, e.outputs, e.label, e.score, e.created_at) for e in old
        ] == [(e.execution_id, e.inputs, e.outputs, e.label, e.score, e.created_at) for e in new]
    assert await target.fetchval("SELECT count(DISTINCT key_id) FROM training_examples") == 1


async def test_snapshot_export_and_retention(schemas: Schemas, tmp_path: Path) -> None:
    name, pool = await schemas.new("ret")
    cipher = Cipher({"k": os.urandom(32)})
    await collect(pool, cipher, 30, workers=1)
    ids = [r["id"] for r in await pool.fetch("SELECT id FROM training_examples ORDER BY id")]
    snapshot = await create_snapshot(pool, "triage-0", ids[:5], "optimize job 7")
    snapped = await export_records(pool, cipher, snapshot_id=snapshot)
    assert len(snapped) == 5

    # the 10 oldest are 40 days old; the snapshot protects ids[:5]
    await pool.execute(
        "UPDATE training_examples SET created_at = now() - interval '40 days'"
        " WHERE id = ANY($1::bigint[])",
        ids[:10],
    )
    await set_policy(pool, "triage-0", retention_max_age_days=30, retention_max_count=20)
    policies = PolicyBook(WorkerPolicy(), refresh_s=0)
    deleted = await apply_retention(pool, policies, processed_ttl_h=None)
    assert deleted == {"triage-0:retention_max_age": 5, "triage-0:retention_max_count": 0}
    left = [r["id"] for r in await pool.fetch("SELECT id FROM training_examples ORDER BY id")]
    assert left == ids[:5] + ids[10:]
    await set_policy(pool, "triage-0", retention_max_count=12)
    deleted = await apply_retention(pool, policies, processed_ttl_h=0)
    assert deleted["triage-0:retention_max_count"] == 8
    left = [r["id"] for r in await pool.fetch("SELECT id FROM training_examples ORDER BY id")]
    assert left == ids[:5] + ids[-12:]  # newest 12, plus the snapshot's examples
    assert deleted["processed_events"] > 0
    drops = {
        r["reason"]: r["count"]
        for r in await pool.fetch(
            "SELECT reason, count FROM collector_drops WHERE worker_id = 'triage-0'"
        )
    }
    assert drops == {"retention_max_age": 5, "retention_max_count": 8}
    out = flywheel("dataset", "snapshots", schema=name, keys=f"k:{_key()}")
    assert "triage-0 v1 5 examples 'optimize job 7'" in out


async def test_rekey_moves_every_row_to_the_active_key(schemas: Schemas) -> None:
    _, pool = await schemas.new("rekey")
    k1, k2 = os.urandom(32), os.urandom(32)
    old = Cipher({"k1": k1})
    await collect(pool, old, 12, workers=1)
    before = await load_training_examples(pool, old, "triage-0")
    rotated = Cipher({"k1": k1, "k2": k2}, active_key="k2")
    assert await rekey(pool, rotated, batch=5) == 12
    assert await pool.fetchval("SELECT array_agg(DISTINCT key_id) FROM training_examples") == ["k2"]
    after = await load_training_examples(pool, Cipher({"k2": k2}), "triage-0")
    assert [(e.inputs, e.outputs, e.label) for e in after] == [
        (e.inputs, e.outputs, e.label) for e in before
    ]
    with pytest.raises(KeyNotFound):
        await load_training_examples(pool, old, "triage-0")
    # ciphertexts are bound to their row: swapping two rows' inputs breaks decryption
    await pool.execute(
        "UPDATE training_examples t SET inputs_enc = o.inputs_enc FROM training_examples o"
        " WHERE t.id = (SELECT min(id) FROM training_examples)"
        " AND o.id = (SELECT max(id) FROM training_examples)"
    )
    with pytest.raises(DecryptionFailed):
        await load_training_examples(pool, Cipher({"k2": k2}), "triage-0")
    assert json.dumps([e.inputs for e in after])  # content is JSON-serializable
