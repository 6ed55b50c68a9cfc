"""asyncpg pool creation with optional schema (search_path) isolation, and a bounded close.

Every connection is made from ``PostgresSettings`` (TLS context, password); a failure the
settings explain raises ``ConnectionSetupError`` naming the setting to fix.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from dataclasses import fields
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

import asyncpg

from dspy_flywheel.security.errors import ConnectionSetupError
from dspy_flywheel.settings import PostgresSettings
from dspy_flywheel.store.connect_errors import explain

Executor: TypeAlias = asyncpg.Pool | asyncpg.Connection  # what a repository function runs on

log = logging.getLogger(__name__)
CLOSE_TIMEOUT_S = 5.0
CHECK_TIMEOUT_S = 15.0
T = TypeVar("T")


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def connect_kwargs(settings: PostgresSettings, schema: str | None = None) -> dict[str, Any]:
    server_settings = {"application_name": "dspy-flywheel"}
    if schema:
        server_settings["search_path"] = f"{schema},public"
    kw: dict[str, Any] = {
        "dsn": settings.url,
        "ssl": settings.ssl_arg(),
        "server_settings": server_settings,
    }
    if settings.password is not None:
        kw["password"] = settings.password.get_secret_value()
    return kw


async def _explained(settings: PostgresSettings, opening: Awaitable[T]) -> T:
    try:
        return await opening
    except Exception as exc:
        if setup := explain(exc, settings):
            raise setup from exc
        raise


async def create_pool(settings: PostgresSettings, schema: str | None = None) -> asyncpg.Pool:
    pool = await _explained(
        settings,
        asyncpg.create_pool(
            **connect_kwargs(settings, schema),
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            init=_init_connection,
        ),
    )
    assert pool is not None
    return pool


async def connect(settings: PostgresSettings, schema: str | None = None) -> asyncpg.Connection:
    conn = await _explained(settings, asyncpg.connect(**connect_kwargs(settings, schema)))
    await _init_connection(conn)
    return conn


async def check_postgres(settings: PostgresSettings, timeout_s: float = CHECK_TIMEOUT_S) -> None:
    """Raise ``ConnectionSetupError`` when the settings cannot work; return when one
    connection succeeds or the server is merely unreachable (the caller's retry handles it)."""
    try:
        conn = await asyncio.wait_for(connect(settings), timeout_s)
    except ConnectionSetupError:
        raise
    except Exception as exc:
        log.debug("PostgreSQL check: %s", exc)
        return
    await conn.close()


async def close_pool(pool: asyncpg.Pool, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
    """Close ``pool`` gracefully; after ``timeout_s`` (server gone, a connection still busy)
    terminate it: an open transaction is rolled back by the server, as after a crash."""
    try:
        await asyncio.wait_for(pool.close(), timeout_s)
    except TimeoutError:
        log.warning("PostgreSQL pool did not close within %.0f s: terminating it", timeout_s)
        pool.terminate()


def json_fields(row: Any, skip: str | None = None) -> dict[str, Any]:
    """A dataclass row's fields (but ``skip``) as a dict, datetimes as ISO text."""
    return {
        f.name: v.isoformat() if isinstance(v := getattr(row, f.name), datetime) else v
        for f in fields(row)
        if f.name != skip
    }


def placeholders(count: int, first: int = 1) -> str:
    """``$first, ..., $(first + count - 1)``: the parameters of an SQL statement."""
    return ", ".join(f"${i}" for i in range(first, first + count))
