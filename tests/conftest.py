"""Fixtures on the real broker and database started by ``ops/stack up``.

Integration tests read ``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL``
(``eval "$(ops/stack env)"``).
Each test gets unique topic names (``topics``), consumer groups (``group_id``) and a ``producer``;
the session
gets a fresh PostgreSQL schema with every migration applied (``db_schema``), dropped at the end;
``private_schema`` is one for a single test (row ids from 1).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from dspy_flywheel.bus import ensure_topics, start_producer, stop_producer
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.settings import KafkaSettings, PostgresSettings
from dspy_flywheel.store.migrate import apply_migrations
from dspy_flywheel.store.pool import connect, create_pool

# Processes the tests start (services, compile children) import ``tests.fixtures`` too.
_ROOT = str(Path(__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)

_HINT = 'start the stack first: ops/stack up && eval "$(ops/stack env)"'


def _require(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        pytest.fail(f"{var} is not set; {_HINT}", pytrace=False)
    return value


@pytest.fixture(scope="session")
def kafka_settings() -> KafkaSettings:
    _require("KAFKA_BOOTSTRAP_SERVERS")
    return KafkaSettings()


@pytest.fixture(scope="session")
def pg_settings() -> PostgresSettings:
    _require("DATABASE_URL")
    return PostgresSettings()


@asynccontextmanager
async def fresh_schema(pg_settings: PostgresSettings) -> AsyncIterator[str]:
    """A new schema with all migrations applied, dropped on exit."""
    schema = f"test_{uuid.uuid4().hex[:10]}"
    conn = await connect(pg_settings)
    try:
        await apply_migrations(conn, schema)
    finally:
        await conn.close()
    yield schema
    conn = await connect(pg_settings)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def db_schema(pg_settings: PostgresSettings) -> AsyncIterator[str]:
    """A fresh schema for this test session with all migrations applied."""
    async with fresh_schema(pg_settings) as schema:
        yield schema


@pytest.fixture
async def private_schema(pg_settings: PostgresSettings) -> AsyncIterator[str]:
    """A fresh schema for one test. In ``db_schema`` a table's ids go on from whatever the
    session's earlier tests inserted; here they start at 1, so what hashes them (the optimizer's
    seeded split of example ids, hence a job's exact holdout figures) is the same on every run.
    A module that asserts such figures overrides ``db_schema`` with it."""
    async with fresh_schema(pg_settings) as schema:
        yield schema


@pytest.fixture
async def db_pool(pg_settings: PostgresSettings, db_schema: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(pg_settings, db_schema)
    yield pool
    await pool.close()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def topics(kafka_settings: KafkaSettings, unique: str) -> Topics:
    """Private, provisioned topics for one test."""
    t = Topics(prefix=f"t{unique}-", partitions=2)
    await ensure_topics(kafka_settings, t)
    return t


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer (idempotent, acks=all), stopped after the test."""
    p = await start_producer(kafka_settings)
    yield p
    await stop_producer(p)


@pytest.fixture
def group_id(unique: str) -> str:
    return f"g{unique}"
