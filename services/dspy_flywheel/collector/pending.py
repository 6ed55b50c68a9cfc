"""Join state rows (``collector_pending``): anonymized events, encrypted, keyed by execution id."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import asyncpg

from dspy_flywheel.collector.events import Execution, Feedback
from dspy_flywheel.collector.join import PendingEntry
from dspy_flywheel.security.crypto import Cipher
from dspy_flywheel.store.examples import dump_bytes

PENDING_COLUMNS = (
    "execution_id, worker_id, key_id, execution_event_id, execution_enc, feedback_event_id,"
    " feedback_enc, dropped_reason"
)


def _aad(execution_id: str, column: str) -> bytes:
    return f"collector_pending|{execution_id}|{column}".encode()


_EXECUTION_FIELDS = tuple(f.name for f in dataclasses.fields(Execution))
_FEEDBACK_FIELDS = tuple(f.name for f in dataclasses.fields(Feedback))


def _doc(obj: Execution | Feedback, names: tuple[str, ...]) -> bytes:
    doc = {n: getattr(obj, n) for n in names}  # shallow: the fields are JSON values already
    if isinstance(obj, Execution):
        doc["input_hash"] = obj.input_hash.hex()
    return dump_bytes(doc)


def seal_entry(cipher: Cipher, entry: PendingEntry) -> tuple[Any, ...]:
    """One row for ``INSERT ... SELECT * FROM unnest(...)`` in PENDING_COLUMNS order."""
    eid = entry.execution_id
    e, f = entry.execution, entry.feedback
    return (
        eid,
        entry.worker_id,
        cipher.active_key,
        e.event_id if e else None,
        cipher.encrypt(_doc(e, _EXECUTION_FIELDS), _aad(eid, "execution")) if e else None,
        f.event_id if f else None,
        cipher.encrypt(_doc(f, _FEEDBACK_FIELDS), _aad(eid, "feedback")) if f else None,
        entry.dropped_reason,
    )


def open_entry(cipher: Cipher, row: asyncpg.Record) -> PendingEntry:
    eid, kid = row["execution_id"], row["key_id"]
    execution = feedback = None
    if row["execution_enc"] is not None:
        doc = json.loads(cipher.decrypt(kid, row["execution_enc"], _aad(eid, "execution")))
        execution = Execution(**{**doc, "input_hash": bytes.fromhex(doc["input_hash"])})
    if row["feedback_enc"] is not None:
        doc = json.loads(cipher.decrypt(kid, row["feedback_enc"], _aad(eid, "feedback")))
        feedback = Feedback(**doc)
    return PendingEntry(eid, row["worker_id"], execution, feedback, row["dropped_reason"])


async def upsert_entries(
    conn: asyncpg.Connection, cipher: Cipher, entries: list[PendingEntry], ttls: list[float]
) -> None:
    if not entries:
        return
    columns = list(zip(*(seal_entry(cipher, e) for e in entries), strict=True))
    await conn.execute(
        f"INSERT INTO collector_pending ({PENDING_COLUMNS}, expires_at)"
        " SELECT e, w, k, xe, x, fe, f, d, now() + make_interval(secs => t)"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[],"
        "             $7::bytea[], $8::text[], $9::float8[]) AS u(e, w, k, xe, x, fe, f, d, t)"
        " ON CONFLICT (execution_id) DO UPDATE SET worker_id = EXCLUDED.worker_id,"
        " key_id = EXCLUDED.key_id, execution_event_id = EXCLUDED.execution_event_id,"
        " execution_enc = EXCLUDED.execution_enc, feedback_event_id = EXCLUDED.feedback_event_id,"
        " feedback_enc = EXCLUDED.feedback_enc, dropped_reason = EXCLUDED.dropped_reason,"
        " expires_at = EXCLUDED.expires_at",
        *columns,
        ttls,
    )


async def fetch_entries(
    conn: asyncpg.Connection, cipher: Cipher, execution_ids: list[str]
) -> dict[str, PendingEntry]:
    """Pending entries for these ids, locked until the transaction ends."""
    rows = await conn.fetch(
        f"SELECT {PENDING_COLUMNS} FROM collector_pending"
        " WHERE execution_id = ANY($1::text[]) FOR UPDATE",
        execution_ids,
    )
    return {r["execution_id"]: open_entry(cipher, r) for r in rows}
