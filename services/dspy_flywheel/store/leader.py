"""One active instance per scope: a PostgreSQL session advisory lock held on its own connection.

The others stand by and take over when the holder's connection goes (its process died or
stopped): the lock is released with the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging

import asyncpg

log = logging.getLogger(__name__)


def lock_key(namespace: str, scope: str) -> int:
    """A signed 64-bit advisory lock key for ``namespace`` (a service) and ``scope``."""
    digest = hashlib.sha256(f"{namespace}:{scope}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def acquire_leadership(
    conn: asyncpg.Connection, key: int, stop: asyncio.Event, what: str
) -> bool:
    """Wait for the lock (True) or for ``stop`` (False); ``what`` names it in the log."""
    waiting_logged = False
    while not stop.is_set():
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            log.info("%s: leadership acquired", what)
            return True
        if not waiting_logged:
            log.info("%s: another instance is active; standing by", what)
            waiting_logged = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    return False
