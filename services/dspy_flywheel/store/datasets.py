"""Datasets: versioned snapshots (``create_snapshot`` returns the id) and JSONL export/import
(``export_records``, ``insert_records``); retention and key rotation live in
:mod:`dspy_flywheel.collector.maintenance`.

Snapshot versions count up per worker (1, 2, ...). Retention never deletes the examples of a
worker's latest snapshot (the data its current program was trained on).

Export format: one JSON object per line, decrypted (content is already anonymized), with every
column an import needs; ``input_hash`` is recomputed on import with the target's hash key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, Final

import asyncpg

from dspy_flywheel.security.crypto import Cipher
from dspy_flywheel.store.examples import dumps, input_hash, seal, unseal

FORMAT = "dspy-flywheel.example/1"


@dataclass(frozen=True, slots=True)
class Snapshot:
    id: int
    worker_id: str
    version: int
    purpose: str
    example_ids: list[int]
    created_at: datetime


def _snapshot(r: asyncpg.Record) -> Snapshot:
    return Snapshot(
        r["id"], r["worker_id"], r["version"], r["purpose"], list(r["example_ids"]), r["created_at"]
    )


async def create_snapshot(
    pool: asyncpg.Pool, worker_id: str, example_ids: Iterable[int], purpose: str
) -> int:
    """Record which examples a training run used; returns the snapshot id."""
    ids = sorted(set(example_ids))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 4043))", worker_id)
        return int(
            await conn.fetchval(
                "INSERT INTO dataset_snapshots"
                " (worker_id, version, purpose, example_ids, example_count)"
                " SELECT $1, COALESCE(max(version), 0) + 1, $2, $3::bigint[], $4"
                " FROM dataset_snapshots WHERE worker_id = $1 RETURNING id",
                worker_id,
                purpose,
                ids,
                len(ids),
            )
        )


async def get_snapshot(pool: asyncpg.Pool, snapshot_id: int) -> Snapshot | None:
    row = await pool.fetchrow("SELECT * FROM dataset_snapshots WHERE id = $1", snapshot_id)
    return _snapshot(row) if row else None


async def list_snapshots(pool: asyncpg.Pool, worker_id: str | None = None) -> list[Snapshot]:
    rows = await pool.fetch(
        "SELECT * FROM dataset_snapshots WHERE $1::text IS NULL OR worker_id = $1"
        " ORDER BY worker_id, version",
        worker_id,
    )
    return [_snapshot(r) for r in rows]


@dataclass(frozen=True, slots=True)
class ExportRecord:
    event_id: str
    execution_id: str
    worker_id: str
    worker_type: str
    program_version: str | None
    success: bool
    score: float | None
    latency_ms: float
    lm_calls: int
    prompt_tokens: int
    completion_tokens: int
    has_label: bool
    label_source: str | None
    feedback_event_id: str | None
    feedback_at: str | None
    executed_at: str
    created_at: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    label: dict[str, Any] | None

    def to_line(self) -> str:
        return dumps({"format": FORMAT, **asdict(self)})

    @classmethod
    def from_line(cls, line: str) -> ExportRecord:
        doc = json.loads(line)
        if doc.pop("format", None) != FORMAT:
            raise ValueError(f"not a {FORMAT} line")
        return cls(**doc)


_CONTENT = ("inputs", "outputs", "label")
_TIMES = frozenset({"feedback_at", "executed_at", "created_at"})
_PLAIN = [f for f in fields(ExportRecord) if f.name not in _CONTENT]
_ARRAY_TYPES = {"str": "text", "bool": "bool", "int": "int8", "float": "float8"}
# The columns an import writes, each with the type of its unnest() array; an export reads all
# but input_hash (recomputed on import with the target's hash key).
_IMPORT: Final = {
    **{
        f.name: "timestamptz" if f.name in _TIMES else _ARRAY_TYPES[str(f.type).split(" |")[0]]
        for f in _PLAIN
    },
    "input_hash": "bytea",
    "key_id": "text",
    **{f"{c}_enc": "bytea" for c in _CONTENT},
}
_EXPORTED = ", ".join(name for name in _IMPORT if name != "input_hash")


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts else None


def _record(cipher: Cipher, r: asyncpg.Record) -> ExportRecord:
    eid, kid = r["execution_id"], r["key_id"]
    plain: dict[str, Any] = {
        f.name: _iso(r[f.name]) if f.name in _TIMES else r[f.name] for f in _PLAIN
    }
    sealed = {c: unseal(cipher, kid, r[f"{c}_enc"], eid, c) for c in _CONTENT}
    return ExportRecord(**plain, **sealed)


async def export_records(
    pool: asyncpg.Pool, cipher: Cipher, worker_id: str | None = None, snapshot_id: int | None = None
) -> list[ExportRecord]:
    """Decrypted examples ordered by id: all, one worker's, or one snapshot's (still stored)."""
    ids: list[int] | None = None
    if snapshot_id is not None:
        snap = await get_snapshot(pool, snapshot_id)
        if snap is None:
            raise LookupError(f"no dataset snapshot {snapshot_id}")
        ids = snap.example_ids
    rows = await pool.fetch(
        f"SELECT {_EXPORTED} FROM training_examples WHERE ($1::text IS NULL OR worker_id = $1)"
        " AND ($2::bigint[] IS NULL OR id = ANY($2)) ORDER BY id",
        worker_id,
        ids,
    )
    return [_record(cipher, r) for r in rows]


def _ts(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _import_row(cipher: Cipher, r: ExportRecord) -> tuple[Any, ...]:
    plain = [_ts(getattr(r, f.name)) if f.name in _TIMES else getattr(r, f.name) for f in _PLAIN]
    sealed = [seal(cipher, getattr(r, c), r.execution_id, c) for c in _CONTENT]
    return (*plain, input_hash(cipher, r.worker_id, r.inputs), cipher.active_key, *sealed)


async def insert_records(
    conn: asyncpg.Connection, cipher: Cipher, records: list[ExportRecord], chunk: int = 500
) -> int:
    """Encrypt under the active key and insert; existing event/execution ids are skipped."""
    inserted = 0
    arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_IMPORT.values()))
    for start in range(0, len(records), chunk):
        rows = [_import_row(cipher, r) for r in records[start : start + chunk]]
        status = await conn.execute(
            f"INSERT INTO training_examples ({', '.join(_IMPORT)}) SELECT * FROM unnest({arrays})"
            " ON CONFLICT DO NOTHING",
            *zip(*rows, strict=True),
        )
        inserted += int(status.rsplit(" ", 1)[-1])
    return inserted
