"""Training examples repository: what the optimizer and trigger read from ``training_examples``.

``load_training_examples`` (the optimizer's reader) returns them in id order, the newest
``limit`` when given; an example's ``label`` is its expected output fields, or, for a usable
unlabeled success, its ``outputs``. Snapshots are in ``store.datasets``.

Storage: ``inputs_enc``/``outputs_enc``/``label_enc`` are AES-GCM ciphertexts of anonymized JSON
under ``key_id``; the associated data is ``training_examples|<execution_id>|<column>`` so a
ciphertext only opens in its own row and column. Metadata columns (worker_id, program_version,
success, score, latency_ms, has_label, input_hash, timestamps) are plain and indexed.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from dspy_flywheel.security.crypto import Cipher

JsonDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class TrainingExample:
    id: int
    execution_id: str
    worker_id: str
    inputs: JsonDict
    outputs: JsonDict | None
    label: JsonDict | None
    score: float | None
    created_at: datetime
    program_version: str | None = None  # the version that served it (None: the code's program)
    has_label: bool = True  # False: ``label`` is the served ``outputs`` standing in for one


def dump_bytes(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON (orjson; the stdlib for what orjson refuses, e.g. huge integers)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except TypeError:
        return json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys
        ).encode()


def dumps(value: Any) -> str:
    """Canonical JSON text: compact, sorted keys."""
    return dump_bytes(value, sort_keys=True).decode()


def content_aad(execution_id: str, column: str) -> bytes:
    return f"training_examples|{execution_id}|{column}".encode()


def seal(
    cipher: Cipher, value: Any, execution_id: str, column: str, key_id: str | None = None
) -> bytes | None:
    if value is None:
        return None
    return cipher.encrypt(dump_bytes(value), content_aad(execution_id, column), key_id)


def unseal(cipher: Cipher, key_id: str, blob: bytes | None, execution_id: str, column: str) -> Any:
    if blob is None:
        return None
    return json.loads(cipher.decrypt(key_id, blob, content_aad(execution_id, column)))


def _normalize(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(unicodedata.normalize("NFC", value).split())
    if isinstance(value, dict):
        return {str(k): _normalize(v) for k, v in value.items()}
    return [_normalize(v) for v in value] if isinstance(value, list | tuple) else value


def input_hash(cipher: Cipher, worker_id: str, inputs: JsonDict) -> bytes:
    """Keyed hash of anonymized inputs, normalized (NFC, collapsed whitespace, sorted keys)."""
    canonical = dump_bytes(_normalize(inputs), sort_keys=True)
    return cipher.keyed_hash(worker_id.encode() + b"\0" + canonical)


def _example(cipher: Cipher, row: asyncpg.Record) -> TrainingExample:
    eid, kid = row["execution_id"], row["key_id"]
    outputs = unseal(cipher, kid, row["outputs_enc"], eid, "outputs")
    label = unseal(cipher, kid, row["label_enc"], eid, "label")
    return TrainingExample(
        id=row["id"],
        execution_id=eid,
        worker_id=row["worker_id"],
        inputs=unseal(cipher, kid, row["inputs_enc"], eid, "inputs"),
        outputs=outputs,
        label=label if label is not None else (outputs if row["success"] else None),
        score=row["score"],
        created_at=row["created_at"],
        program_version=row["program_version"],
        has_label=row["has_label"],
    )


async def load_training_examples(
    pool: asyncpg.Pool,
    cipher: Cipher,
    worker_id: str,
    *,
    limit: int | None = None,
    labeled_only: bool = False,
) -> list[TrainingExample]:
    """Decrypted examples of one worker, ordered by id (the newest ``limit`` when given)."""
    where = "worker_id = $1" + (" AND has_label" if labeled_only else "")
    sql = (
        "SELECT id, execution_id, worker_id, success, score, key_id, inputs_enc, outputs_enc,"
        f" label_enc, created_at, program_version, has_label FROM training_examples WHERE {where}"
    )
    if limit is not None:
        sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT {int(limit)}) newest"
    rows = await pool.fetch(f"{sql} ORDER BY id", worker_id)
    return [_example(cipher, r) for r in rows]
