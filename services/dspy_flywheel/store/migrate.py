"""Versioned SQL migrations: ``migrations/NNNN_name.sql`` applied once each, in order.

Ranges: 0001-0099 core, 0100 collector, 0200 trigger, 0300 optimizer/manager, 0400 security,
0500 rollout, 0600 shared by services (``service_offsets``, the outboxes' dead rows).
Run: ``python -m dspy_flywheel.store.migrate`` (uses DATABASE_URL, FLYWHEEL_DB_SCHEMA).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from dspy_flywheel.settings import PostgresSettings

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x5F1E_E1  # advisory lock: one migrator at a time


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    pass


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        prefix, _, name = path.stem.partition("_")
        if not prefix.isdigit():
            raise MigrationError(f"migration file {path.name} must start with a number")
        found.append(Migration(int(prefix), name, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return found


async def apply_migrations(
    conn: asyncpg.Connection, schema: str | None = None, directory: Path = MIGRATIONS_DIR
) -> list[int]:
    """Apply pending migrations; return the versions applied now. Idempotent."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        if schema:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(f'SET search_path TO "{schema}", public')
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            r["version"]: r["checksum"]
            for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        applied = []
        for m in discover(directory):
            if m.version in done:
                if done[m.version] != m.checksum:
                    log.warning("migration %04d_%s changed after it was applied", m.version, m.name)
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
            log.info("applied migration %04d_%s", m.version, m.name)
            applied.append(m.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def migrate(settings: PostgresSettings, schema: str | None) -> list[int]:
    """Apply pending migrations over a connection of its own (closed after)."""
    from dspy_flywheel.store.pool import connect

    conn = await connect(settings)
    try:
        return await apply_migrations(conn, schema)
    finally:
        await conn.close()


async def _main() -> None:
    from dspy_flywheel.settings import FlywheelSettings

    settings = FlywheelSettings()
    applied = await migrate(settings.postgres, settings.db_schema)
    print(f"migrations applied: {applied or 'none (up to date)'}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(_main())
