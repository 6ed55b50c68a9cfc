"""asyncpg pool creation with optional schema (search_path) isolation."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from dspy_flywheel.settings import PostgresSettings


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def connect_kwargs(settings: PostgresSettings, schema: str | None = None) -> dict[str, Any]:
    server_settings = {"application_name": "dspy-flywheel"}
    if schema:
        server_settings["search_path"] = f"{schema},public"
    return {"dsn": settings.url, "ssl": settings.ssl_arg(), "server_settings": server_settings}


async def create_pool(settings: PostgresSettings, schema: str | None = None) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        **connect_kwargs(settings, schema),
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        init=_init_connection,
    )
    assert pool is not None
    return pool


async def connect(settings: PostgresSettings, schema: str | None = None) -> asyncpg.Connection:
    conn = await asyncpg.connect(**connect_kwargs(settings, schema))
    await _init_connection(conn)
    return conn
