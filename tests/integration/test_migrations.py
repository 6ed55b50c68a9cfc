"""Migrations on the real database: applied twice, the schema is the same."""

from __future__ import annotations

import uuid

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
