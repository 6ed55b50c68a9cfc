"""Migrations on the real database: applied twice, the schema is the same."""

from __future__ import annotations

import uuid
from pathlib import Path

from dspy_flywheel.settings import PostgresSettings
from dspy_flywheel.store.migrate import apply_migrations, discover
from dspy_flywheel.store.pool import connect

_SCHEMA_SHAPE = """
SELECT table_name, column_name, data_type, is_nullable, column_default
FROM information_schema.columns WHERE table_schema = $1
ORDER BY table_name, ordinal_position"""


async def test_migrations_are_idempotent(pg_settings: PostgresSettings) -> None:
    schema = f"mig_{uuid.uuid4().hex[:8]}"
    conn = await connect(pg_settings)
    try:
        first = await apply_migrations(conn, schema)
        shape1 = await conn.fetch(_SCHEMA_SHAPE, schema)
        second = await apply_migrations(conn, schema)
        shape2 = await conn.fetch(_SCHEMA_SHAPE, schema)
        recorded = await conn.fetchval(f'SELECT count(*) FROM "{schema}".schema_migrations')
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    assert first == [m.version for m in discover()]
    assert second == []
    assert shape1 == shape2
    assert len(shape1) > 0
    assert recorded == len(first)


async def test_offsets_move_to_the_shared_table(
    pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    """A database from before 0600: the trigger's and the rollout's offsets carry over."""
    schema = f"mig_{uuid.uuid4().hex[:8]}"
    for m in discover():
        if m.version < 600:
            (tmp_path / f"{m.version:04d}_{m.name}.sql").write_text(m.sql)
    conn = await connect(pg_settings)
    try:
        await apply_migrations(conn, schema, tmp_path)
        for table, offset in (("trigger_offsets", 7), ("rollout_offsets", 9)):
            await conn.execute(
                f'INSERT INTO "{schema}".{table} (scope, topic, partition, next_offset)'
                " VALUES ('s', 't', 0, $1)",
                offset,
            )
        assert await apply_migrations(conn, schema) == [
            m.version for m in discover() if m.version >= 600
        ]
        moved = await conn.fetch(
            f'SELECT service, scope, topic, partition, next_offset FROM "{schema}".service_offsets'
            " ORDER BY service"
        )
        left = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1"
            " AND table_name IN ('trigger_offsets', 'rollout_offsets')",
            schema,
        )
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    assert [tuple(r) for r in moved] == [("rollout", "s", "t", 0, 9), ("trigger", "s", "t", 0, 7)]
    assert left == 0
