"""Maintenance of stored examples: retention policies and re-encryption after key rotation.

    await prune(pool, rules_for, processed_ttl_h=None) -> dict[str, int]     # retention
    await rekey(pool, cipher) -> int                                         # re-encrypt rows

Retention (max age by ``created_at``, max count per worker) never deletes the examples of a
worker's latest dataset snapshot. Deletions are counted in ``collector_drops`` as
``retention_max_age`` / ``retention_max_count``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from dspy_flywheel.collector.sink import count_drops
from dspy_flywheel.security.crypto import Cipher
from dspy_flywheel.store.examples import content_aad


@dataclass(frozen=True, slots=True)
class RetentionRule:
    max_age_days: float | None = None
    max_count: int | None = None


async def prune(
    pool: asyncpg.Pool,
    rules_for: Callable[[str], RetentionRule],
    processed_ttl_h: float | None = None,
) -> dict[str, int]:
    """Apply retention per worker; returns deleted counts by ``<worker>:<rule>``."""
    deleted: dict[str, int] = {}
    workers = [r[0] for r in await pool.fetch("SELECT DISTINCT worker_id FROM training_examples")]
    for worker in workers:
        rule = rules_for(worker)
        if rule.max_age_days is None and rule.max_count is None:
            continue
        async with pool.acquire() as conn, conn.transaction():
            keep = (
                await conn.fetchval(
                    "SELECT example_ids FROM dataset_snapshots WHERE worker_id = $1"
                    " ORDER BY version DESC LIMIT 1",
                    worker,
                )
                or []
            )
            if rule.max_age_days is not None:
                status = await conn.execute(
                    "DELETE FROM training_examples WHERE worker_id = $1 AND id <> ALL($2::bigint[])"
                    " AND created_at < now() - make_interval(secs => $3)",
                    worker,
                    keep,
                    rule.max_age_days * 86400,
                )
                deleted[f"{worker}:retention_max_age"] = int(status.rsplit(" ", 1)[-1])
            if rule.max_count is not None:
                status = await conn.execute(
                    "DELETE FROM training_examples WHERE worker_id = $1 AND id <> ALL($2::bigint[])"
                    " AND id < (SELECT id FROM training_examples WHERE worker_id = $1"
                    "           ORDER BY id DESC OFFSET $3 LIMIT 1)",
                    worker,
                    keep,
                    rule.max_count - 1,
                )
                deleted[f"{worker}:retention_max_count"] = int(status.rsplit(" ", 1)[-1])
            await count_drops(
                conn,
                {
                    (worker, k.split(":", 1)[1]): n
                    for k, n in deleted.items()
                    if k.startswith(f"{worker}:") and n
                },
            )
    if processed_ttl_h is not None:
        status = await pool.execute(
            "DELETE FROM collector_processed_events"
            " WHERE processed_at < now() - make_interval(secs => $1)",
            processed_ttl_h * 3600,
        )
        deleted["processed_events"] = int(status.rsplit(" ", 1)[-1])
    return deleted


async def rekey(pool: asyncpg.Pool, cipher: Cipher, batch: int = 500) -> int:
    """Re-encrypt every example not under the active key; returns rows rewritten."""
    total = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, execution_id, key_id, inputs_enc, outputs_enc, label_enc"
                " FROM training_examples WHERE key_id <> $1 ORDER BY id LIMIT $2"
                " FOR UPDATE SKIP LOCKED",
                cipher.active_key,
                batch,
            )
            for r in rows:
                eid, kid = r["execution_id"], r["key_id"]
                blobs = [
                    None
                    if r[f"{c}_enc"] is None
                    else cipher.encrypt(
                        cipher.decrypt(kid, r[f"{c}_enc"], content_aad(eid, c)), content_aad(eid, c)
                    )
                    for c in ("inputs", "outputs", "label")
                ]
                await conn.execute(
                    "UPDATE training_examples SET key_id = $2, inputs_enc = $3, outputs_enc = $4,"
                    " label_enc = $5 WHERE id = $1",
                    r["id"],
                    cipher.active_key,
                    *blobs,
                )
        total += len(rows)
        if len(rows) < batch:
            return total
