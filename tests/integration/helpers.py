"""Helpers every integration test shares: polling with a deadline, trace ids, log tails.

Async results are asserted by polling (``until``), never by sleeping. ``alive`` is checked on
every poll (a service that died fails at once, with its log); ``context`` adds what a failure
message needs (e.g. the service's log tail).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

T = TypeVar("T")
DEADLINE_S = 60.0


async def until(
    predicate: Callable[[], Awaitable[T]],
    what: str,
    within_s: float = DEADLINE_S,
    *,
    every_s: float = 0.05,
    alive: Callable[[], None] | None = None,
    context: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy (returned); fail after
    ``within_s`` seconds."""
    end = time.monotonic() + within_s
    while True:
        if alive is not None:
            alive()
        value = await predicate()
        if value:
            return value
        if time.monotonic() > end:
            detail = f":\n{context()}" if context is not None else ""
            pytest.fail(f"timed out after {within_s:.0f} s waiting for {what}{detail}")
        await asyncio.sleep(every_s)


async def until_sql(
    pool: asyncpg.Pool,
    sql: str,
    done: Callable[[Any], bool],
    within_s: float = DEADLINE_S,
    **kw: Any,
) -> Any:
    """Poll ``pool.fetchval(sql)`` until ``done(value)``; returns the value."""

    async def check() -> tuple[Any] | None:
        value = await pool.fetchval(sql)
        return (value,) if done(value) else None

    (value,) = await until(check, repr(sql), within_s, every_s=0.2, **kw)
    return value


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def tail(log: Path, chars: int = 3000) -> str:
    return log.read_text()[-chars:] if log.exists() else "(no log)"
