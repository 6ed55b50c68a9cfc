"""Append-only audit log in PostgreSQL (table ``audit_log``, migration 0001)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import asyncpg

log = logging.getLogger(__name__)


async def record_audit(
    conn: asyncpg.Pool | asyncpg.Connection,
    actor: str,
    action: str,
    target: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor, action, target, details) VALUES ($1, $2, $3, $4)",
        actor,
        action,
        target,
        details or {},
    )


class AuditLog:
    """Records to the database; a failure to audit is logged loudly, never swallowed silently."""

    def __init__(self, pool: asyncpg.Pool | Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool (resolved per call: an app's pool may open only at startup)."""
        return self._pool if isinstance(self._pool, asyncpg.Pool) else self._pool()

    async def record(
        self, actor: str, action: str, target: str | None, details: dict[str, Any] | None = None
    ) -> None:
        try:
            await record_audit(self.pool, actor, action, target, details)
        except (asyncpg.PostgresError, OSError):
            log.exception("AUDIT WRITE FAILED actor=%s action=%s target=%s", actor, action, target)
            raise

    async def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT at, actor, action, target, details FROM audit_log ORDER BY id DESC LIMIT $1",
            limit,
        )
        return [dict(r) for r in rows]
