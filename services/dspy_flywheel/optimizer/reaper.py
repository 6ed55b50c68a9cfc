"""Jobs whose optimizer died: marked ``failed`` with the reason, never silently dropped.

A running job is orphaned when its owner is another process on this host that no longer
exists, or when its heartbeat is older than ``stale_after_s`` (owner on any host).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

import asyncpg

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.optimizer.settings import OptimizerSettings
from dspy_flywheel.store import jobs, outbox

log = logging.getLogger(__name__)
RESTARTED = "optimizer restarted mid-job"


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def reap_orphans(
    pool: asyncpg.Pool, topics: Topics, settings: OptimizerSettings
) -> list[str]:
    """Fail the running jobs that another optimizer than ``settings.instance_id`` left behind
    (``stale_after_s``); returns their ids."""
    host = socket.gethostname()
    rows = await pool.fetch(
        """SELECT job_id, worker_id, owner, owner_host, owner_pid,
                  EXTRACT(EPOCH FROM now() - heartbeat_at) AS age
           FROM optimization_jobs WHERE status = 'running' AND owner IS DISTINCT FROM $1""",
        settings.instance_id,
    )
    reaped = []
    for row in rows:
        age = float(row["age"] or 0.0)
        same_host_dead = (
            row["owner_host"] == host
            and row["owner_pid"] is not None
            and _process_gone(int(row["owner_pid"]))
        )
        if not same_host_dead and age < settings.stale_after_s:
            continue
        gone = "is gone" if same_host_dead else f"silent for {age:.0f} s"
        why = f"{RESTARTED}: owner {row['owner']} {gone}"
        async with pool.acquire() as conn, conn.transaction():
            done = await jobs.finish(
                conn,
                row["job_id"],
                "failed",
                why,
                only_from=("running",),
                details={"failure": "orphaned"},
            )
            if done is None:
                continue
            await outbox.add_status(
                conn,
                topics.optimization_status,
                row["job_id"],
                row["worker_id"],
                "failed",
                progress=done.progress,
                message=why,
                details={"failure": "orphaned"},
            )
        log.warning("job %s: %s", row["job_id"], why)
        reaped.append(str(row["job_id"]))
    return reaped


async def run_reaper(
    pool: asyncpg.Pool,
    topics: Topics,
    settings: OptimizerSettings,
    stop: asyncio.Event,
    wake_relay: Callable[[], None],
) -> None:
    interval = max(1.0, settings.stale_after_s / 2)
    while not stop.is_set():
        try:
            if await reap_orphans(pool, topics, settings):
                wake_relay()
        except Exception:
            log.exception("reaping orphaned jobs failed")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
