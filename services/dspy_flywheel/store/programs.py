"""The program registry: every version a worker may serve, and what each instance serves.

Versions count up from 1 per worker. ``add_version`` takes a per-worker advisory lock inside the
caller's transaction, so two publishers never take the same number; a job publishes at most once
(unique ``job_id``).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import astuple, dataclass, field, fields
from datetime import datetime
from typing import Any, Final

import asyncpg

from dspy_flywheel.store.pool import Executor, json_fields, placeholders


@dataclass(frozen=True)
class NewProgram:
    worker_id: str
    state: dict[str, Any]
    signature: dict[str, Any]
    optimizer: str
    size_bytes: int
    params: dict[str, Any] = field(default_factory=dict)
    job_id: str | None = None
    snapshot_id: int | None = None
    holdout_before: float | None = None
    holdout_after: float | None = None
    lm_calls: int | None = None
    tokens: int | None = None
    cpu_s: float | None = None
    wall_s: float | None = None
    requested_by: str = "system"
    reason: str | None = None
    gate: dict[str, Any] = field(default_factory=dict)  # the holdout gate's decision record
    adapter: dict[str, Any] | None = None  # the LoRA adapter it serves (finetune.artifacts)


@dataclass(frozen=True)
class ProgramVersion(NewProgram):
    version: int = 0
    created_at: datetime | None = None

    def summary(self) -> dict[str, Any]:
        """Everything but the (large) state, JSON-ready."""
        return json_fields(self, skip="state")


@dataclass(frozen=True)
class Ack:
    event_id: str
    worker_id: str
    instance_id: str
    version: int | None
    status: str
    reason: str | None
    traceparent: str | None
    acked_at: datetime


_COLUMNS: Final = ", ".join(f.name for f in fields(ProgramVersion))
_NEW_COLUMNS: Final = [f.name for f in fields(NewProgram)]
_ACK_COLUMNS: Final = ", ".join(f.name for f in fields(Ack))


async def add_version(conn: asyncpg.Connection, program: NewProgram) -> ProgramVersion:
    """Insert the next version for the worker. Call inside a transaction."""
    if not conn.is_in_transaction():
        raise RuntimeError("add_version must run inside a transaction")
    lock_key = zlib.crc32(f"programs:{program.worker_id}".encode())
    await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key)
    version = await conn.fetchval(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM programs WHERE worker_id = $1", program.worker_id
    )
    row = await conn.fetchrow(
        f"""INSERT INTO programs (version, {", ".join(_NEW_COLUMNS)})
            VALUES ($1, {placeholders(len(_NEW_COLUMNS), 2)}) RETURNING {_COLUMNS}""",
        version,
        *(getattr(program, n) for n in _NEW_COLUMNS),
    )
    return ProgramVersion(**dict(row))


async def latest(db: Executor, worker_id: str) -> ProgramVersion | None:
    return await get_version(db, worker_id, None)


async def get_version(db: Executor, worker_id: str, version: int | None) -> ProgramVersion | None:
    """Version ``version`` of the worker's program (None: its latest)."""
    row = await db.fetchrow(
        f"""SELECT {_COLUMNS} FROM programs WHERE worker_id = $1
            AND ($2::integer IS NULL OR version = $2) ORDER BY version DESC LIMIT 1""",
        worker_id,
        version,
    )
    return None if row is None else ProgramVersion(**dict(row))


class Registry:
    """The registry as ``DSPyAgent.asave_to_registry`` / ``aload_from_registry`` use it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def find(
        self, worker_id: str, version: int | None
    ) -> tuple[int, dict[str, Any], dict[str, Any]] | None:
        found = await get_version(self.pool, worker_id, version)
        return None if found is None else (found.version, found.state, found.signature)

    async def register(
        self,
        worker_id: str,
        state: dict[str, Any],
        signature: dict[str, Any],
        *,
        optimizer: str,
        requested_by: str,
    ) -> int:
        program = NewProgram(
            worker_id=worker_id,
            state=state,
            signature=signature,
            optimizer=optimizer,
            size_bytes=len(json.dumps(state).encode()),
            requested_by=requested_by,
            reason="manual",
        )
        async with self.pool.acquire() as conn, conn.transaction():
            return (await add_version(conn, program)).version


async def list_versions(db: Executor, worker_id: str, *, limit: int = 50) -> list[ProgramVersion]:
    """Newest first; ``state`` is left empty to keep listings light."""
    cols = _COLUMNS.replace("state, ", "'{}'::jsonb AS state, ", 1)
    rows = await db.fetch(
        f"SELECT {cols} FROM programs WHERE worker_id = $1 ORDER BY version DESC LIMIT $2",
        worker_id,
        limit,
    )
    return [ProgramVersion(**dict(r)) for r in rows]


async def record_ack(db: Executor, ack: Ack) -> bool:
    """Store an acknowledgement once per event id; False for a duplicate."""
    row = await db.fetchrow(
        f"INSERT INTO program_acks ({_ACK_COLUMNS}) VALUES ({placeholders(len(fields(Ack)))})"
        " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        *astuple(ack),
    )
    return row is not None


async def serving(db: Executor, worker_id: str) -> list[Ack]:
    """The latest acknowledgement of each instance of the worker."""
    rows = await db.fetch(
        f"""SELECT DISTINCT ON (instance_id) {_ACK_COLUMNS} FROM program_acks WHERE worker_id = $1
           ORDER BY instance_id, acked_at DESC, received_at DESC""",
        worker_id,
    )
    return [Ack(**dict(r)) for r in rows]
