"""Consumed offsets kept in PostgreSQL beside the state they produced (services that read every
partition without a consumer group: the trigger, the rollout service; ``store.stateful``).

One table, ``service_offsets`` (service, scope, topic, partition, next_offset; migration 0600);
``save_offsets`` runs inside the caller's transaction, so state and offsets always agree.
"""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

from dspy_flywheel.store.pool import Executor

Offsets: TypeAlias = dict[tuple[str, int], int]  # (topic, partition) -> next offset to read


async def load_offsets(db: Executor, service: str, scope: str) -> Offsets:
    rows = await db.fetch(
        "SELECT topic, partition, next_offset FROM service_offsets"
        " WHERE service = $1 AND scope = $2",
        service,
        scope,
    )
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def save_offsets(
    conn: asyncpg.Connection, service: str, scope: str, offsets: Offsets
) -> None:
    if offsets:
        await conn.executemany(
            """INSERT INTO service_offsets (service, scope, topic, partition, next_offset)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (service, scope, topic, partition) DO UPDATE
               SET next_offset = EXCLUDED.next_offset, updated_at = now()""",
            [(service, scope, t, p, o) for (t, p), o in offsets.items()],
        )
