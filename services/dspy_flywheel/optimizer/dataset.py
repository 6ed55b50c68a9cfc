"""The job's dataset: load the worker's examples, snapshot them (lineage), split by seed.

The split is a pure function of the example ids and the seed: the same snapshot and seed give
the same train / validation / holdout sets on any machine.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from dspy_flywheel.optimizer.errors import DatasetTooSmall
from dspy_flywheel.optimizer.spec import DataRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    train: list[DataRow]
    val: list[DataRow]
    holdout: list[DataRow]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "holdout": len(self.holdout)}


class DatasetSource(Protocol):
    """Where a job's examples come from (the collector's store in production)."""

    async def load(
        self, worker_id: str, *, limit: int | None, labeled_only: bool
    ) -> list[DataRow]: ...

    async def snapshot(
        self, worker_id: str, example_ids: list[str], purpose: str
    ) -> int | None: ...


class CollectorDataset:
    """Examples stored by the collector, decrypted with the platform cipher."""

    def __init__(self, pool: asyncpg.Pool, cipher: Any = None) -> None:
        self.pool = pool
        self._cipher = cipher

    def _get_cipher(self) -> Any:
        if self._cipher is None:
            from dspy_flywheel.security.crypto import Cipher

            self._cipher = Cipher.from_settings()
        return self._cipher

    async def load(self, worker_id: str, *, limit: int | None, labeled_only: bool) -> list[DataRow]:
        from dspy_flywheel.store.examples import load_training_examples

        found = await load_training_examples(
            self.pool, self._get_cipher(), worker_id, limit=limit, labeled_only=labeled_only
        )
        return [
            DataRow(str(e.id), dict(e.inputs), e.outputs, e.label, e.program_version, e.has_label)
            for e in found
        ]

    async def snapshot(self, worker_id: str, example_ids: list[str], purpose: str) -> int | None:
        from dspy_flywheel.store.datasets import create_snapshot

        ids = [int(i) for i in example_ids]
        return int(await create_snapshot(self.pool, worker_id, ids, purpose))


def _rank(seed: int, example_id: str) -> str:
    return hashlib.sha256(f"{seed}:{example_id}".encode()).hexdigest()


def split(
    rows: list[DataRow], *, seed: int, train_fraction: float, val_fraction: float, min_examples: int
) -> Split:
    """Deterministic split by ``seed``; refuses (DatasetTooSmall) below ``min_examples``.

    Order is by a seeded hash of each example id, so it does not depend on load order.
    Holdout and train always get at least one example; validation may be empty.
    """
    unique = {row.id: row for row in rows}
    if len(unique) < max(min_examples, 2):
        raise DatasetTooSmall(len(unique), max(min_examples, 2))
    ordered = sorted(unique.values(), key=lambda r: _rank(seed, r.id))
    n = len(ordered)
    n_train = max(1, round(n * train_fraction))
    n_val = round(n * val_fraction)
    if n_train + n_val >= n:
        n_val = max(0, n - n_train - 1)
    train = ordered[:n_train]
    val = ordered[n_train : n_train + n_val]
    holdout = ordered[n_train + n_val :]
    return Split(train, val, holdout)
