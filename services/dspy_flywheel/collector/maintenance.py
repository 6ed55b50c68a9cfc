"""Maintenance of stored examples and join state; the periodic ones run under ``bus.every``
from ``app.run``, whatever the engine, and from the CLI.

    await expire_pending(pool) -> {(worker, reason): n}                  # join state past its TTL
    await apply_retention(pool, policies, processed_ttl_h) -> {"<worker>:<rule>": n}
    await rekey(pool, cipher) -> int                                     # re-encrypt rows

Expiry: an execution still waiting for feedback is dropped as ``no_feedback``; feedback whose
execution never came is dropped as ``orphan_feedback``; tombstones just go. ``FOR UPDATE SKIP
LOCKED`` lets several collector instances sweep at once without double counting.

Retention (each worker's policy: max age by ``created_at``, max count) never deletes the
examples of a worker's latest dataset snapshot. Deletions are counted in ``collector_drops`` as
``retention_max_age`` / ``retention_max_count``.
"""

from __future__ import annotations

import logging
from collections import Counter

import asyncpg

from dspy_flywheel.collector.policy import PolicyBook
from dspy_flywheel.collector.sink import count_drops
from dspy_flywheel.security.crypto import Cipher
from dspy_flywheel.store.examples import content_aad

log = logging.getLogger(__name__)


async def expire_pending(pool: asyncpg.Pool, batch: int = 1000) -> Counter[tuple[str, str]]:
    """Delete expired join entries, counting drops; returns ``{(worker, reason): n}``."""
    total: Counter[tuple[str, str]] = Counter()
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "DELETE FROM collector_pending WHERE execution_id IN ("
                " SELECT execution_id FROM collector_pending WHERE expires_at <= now()"
                " ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
                " RETURNING worker_id, execution_event_id, feedback_event_id, dropped_reason",
                batch,
            )
            drops: Counter[tuple[str, str]] = Counter()
            for r in rows:
                if r["dropped_reason"] is not None:
                    continue
                reason = "no_feedback" if r["execution_event_id"] else "orphan_feedback"
                drops[r["worker_id"], reason] += 1
            await count_drops(conn, drops)
        total.update(drops)
        if len(rows) < batch:
            break
    if total:
        log.info(
            "expired join state: %s",
            ", ".join(f"{r}={n} ({w})" for (w, r), n in sorted(total.items())),
        )
    return total


async def apply_retention(
    pool: asyncpg.Pool, policies: PolicyBook, processed_ttl_h: float | None
) -> dict[str, int]:
    """Apply each worker's retention policy; returns deleted counts by ``<worker>:<rule>``."""
    await policies.refresh(pool)
    deleted: dict[str, int] = {}
    workers = [r[0] for r in await pool.fetch("SELECT DISTINCT worker_id FROM training_examples")]
    for worker in workers:
        rule = policies.for_worker(worker)
        if rule.retention_max_age_days is None and rule.retention_max_count is None:
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
            if rule.retention_max_age_days is not None:
                status = await conn.execute(
                    "DELETE FROM training_examples WHERE worker_id = $1 AND id <> ALL($2::bigint[])"
                    " AND created_at < now() - make_interval(secs => $3)",
                    worker,
                    keep,
                    rule.retention_max_age_days * 86400,
                )
                deleted[f"{worker}:retention_max_age"] = int(status.rsplit(" ", 1)[-1])
            if rule.retention_max_count is not None:
                status = await conn.execute(
                    "DELETE FROM training_examples WHERE worker_id = $1 AND id <> ALL($2::bigint[])"
                    " AND id < (SELECT id FROM training_examples WHERE worker_id = $1"
                    "           ORDER BY id DESC OFFSET $3 LIMIT 1)",
                    worker,
                    keep,
                    rule.retention_max_count - 1,
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
    removed = {k: n for k, n in deleted.items() if n}
    if removed:
        log.info("retention removed: %s", removed)
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
