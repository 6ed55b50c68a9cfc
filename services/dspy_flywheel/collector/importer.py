"""``flywheel dataset import``: JSONL examples anonymized (again) and encrypted into the DB.

Exported content is already anonymized; running the anonymizer again leaves it unchanged
(placeholders are not PII) and protects against hand-made files that carry raw values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import asyncpg

from dspy_flywheel.collector.placeholders import PersistentPlaceholderStore
from dspy_flywheel.collector.prepare import Preparer
from dspy_flywheel.privacy import Anonymizer
from dspy_flywheel.security.crypto import Cipher
from dspy_flywheel.store.datasets import ExportRecord, insert_records


async def import_lines(pool: asyncpg.Pool, cipher: Cipher, lines: Iterable[str]) -> tuple[int, int]:
    """Import JSONL lines; returns (records read, rows inserted). One transaction."""
    records = [ExportRecord.from_line(line) for line in lines if line.strip()]
    store = PersistentPlaceholderStore()
    await store.ensure_loaded(pool, {r.worker_id for r in records})
    preparer = Preparer(Anonymizer(cipher.pii_key, store=store), cipher)
    clean = [
        dataclasses.replace(
            r,
            inputs=preparer.value(r.inputs, r.worker_id),
            outputs=preparer.value(r.outputs, r.worker_id),
            label=preparer.value(r.label, r.worker_id),
        )
        for r in records
    ]
    async with pool.acquire() as conn, conn.transaction():
        inserted = await insert_records(conn, cipher, clean)
        saved = await store.save(conn)
    store.saved(saved)
    return len(records), inserted
