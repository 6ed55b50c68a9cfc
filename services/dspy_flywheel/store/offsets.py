"""Consumed offsets kept in PostgreSQL beside the state they produced (services that read every
partition without a consumer group: the trigger, the rollout service).

Each service has its own table (``<service>_offsets``: scope, topic, partition, next_offset);
``save_offsets`` runs inside the caller's transaction, so state and offsets always agree.
"""

from __future__ import annotations

from typing import Final, TypeAlias

import asyncpg

from dspy_flywheel.store.pool import Executor

Offsets: TypeAlias = dict[tuple[str, int], int]  # (topic, partition) -> next offset to read
TABLES: Final = frozenset({"trigger_offsets", "rollout_offsets"})


def _table(name: str) -> str:
    if name not in TABLES:  # a table name is SQL text: only ours
        raise ValueError(f"not an offsets table: {name!r}")
    return name


async def load_offsets(db: Executor, table: str, scope: str) -> Offsets:
    rows = await db.fetch(
        f"SELECT topic, partition, next_offset FROM {_table(table)} WHERE scope = $1", scope
    )
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def save_offsets(conn: asyncpg.Connection, table: str, scope: str, offsets: Offsets) -> None:
    if offsets:
        await conn.executemany(
            f"""INSERT INTO {_table(table)} (scope, topic, partition, next_offset)
                VALUES ($1, $2, $3, $4)
                ON CONFLICT (scope, topic, partition) DO UPDATE
                SET next_offset = EXCLUDED.next_offset, updated_at = now()""",
            [(scope, t, p, o) for (t, p), o in offsets.items()],
        )
