"""The audit log in PostgreSQL (table ``audit_log``, migration 0001).

A mutation's row is written *before* it runs (:meth:`AuditLog.begin`, status ``"pending"``) and
completed with its outcome after (:meth:`AuditLog.finish`: HTTP status, and the error message or
the response). When the row cannot be written the mutation does not run, so there is no side
effect without its row. A row left ``"pending"`` is a call that never finished (the process
died, or the database went away while it ran). Rows are never deleted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

log = logging.getLogger(__name__)
WRITE_TIMEOUT_S = 5.0


class AuditUnavailable(RuntimeError):
    """The audit row could not be written: the mutation must not run."""


async def record_audit(
    conn: asyncpg.Pool | asyncpg.Connection,
    actor: str,
    action: str,
    target: str | None,
    details: dict[str, Any] | None = None,
) -> int:
    row_id: int = await conn.fetchval(
        "INSERT INTO audit_log (actor, action, target, details) VALUES ($1, $2, $3, $4)"
        " RETURNING id",
        actor,
        action,
        target,
        details or {},
    )
    return row_id


class AuditLog:
    def __init__(self, pool: asyncpg.Pool | Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool (resolved per call: an app's pool may open only at startup)."""
        return self._pool if isinstance(self._pool, asyncpg.Pool) else self._pool()

    async def record(
        self, actor: str, action: str, target: str | None, details: dict[str, Any] | None = None
    ) -> int:
        """Write one row; AuditUnavailable (after logging loudly) when it cannot be written."""
        try:
            return await asyncio.wait_for(
                record_audit(self.pool, actor, action, target, details), WRITE_TIMEOUT_S
            )
        except Exception as exc:  # database away, pool closed, timeout: all mean "no row"
            log.error(
                "AUDIT WRITE FAILED actor=%s action=%s target=%s details=%s: %r",
                actor,
                action,
                target,
                details,
                exc,
            )
            raise AuditUnavailable(f"audit log unavailable: {type(exc).__name__}") from exc

    async def begin(
        self, actor: str, action: str, target: str | None, details: dict[str, Any]
    ) -> int:
        return await self.record(actor, action, target, {**details, "status": "pending"})

    async def finish(self, row_id: int, outcome: dict[str, Any]) -> None:
        """Complete a row from :meth:`begin`; a failure is logged (the row stays pending)."""
        try:
            await asyncio.wait_for(
                self.pool.execute(
                    "UPDATE audit_log SET details = details || $2::jsonb WHERE id = $1",
                    row_id,
                    outcome,
                ),
                WRITE_TIMEOUT_S,
            )
        except Exception as exc:
            log.error("AUDIT WRITE FAILED completing row %d with %s: %r", row_id, outcome, exc)
