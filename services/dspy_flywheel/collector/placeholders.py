"""PII placeholder numbering persisted in PostgreSQL (``collector_placeholders``).

The privacy :class:`~dspy_flywheel.privacy.Anonymizer` asks its store for ``<KIND_n>`` by
keyed digest. This store keeps each scope's (worker's) mapping in memory, loaded from the table
before a batch is anonymized; numbers handed out during a batch are written in that batch's
transaction (:meth:`save`). If another instance numbered the same scope concurrently, ``save``
raises :class:`PlaceholderConflict`; the caller rolls back, :meth:`forget` the scopes and redoes
the batch from the reloaded mapping.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import asyncpg

from dspy_flywheel.privacy.placeholders import InMemoryPlaceholderStore


class PlaceholderConflict(RuntimeError):
    retriable: ClassVar[bool] = True


class ScopeNotLoaded(RuntimeError):
    retriable: ClassVar[bool] = False


class PersistentPlaceholderStore(InMemoryPlaceholderStore):
    def __init__(self) -> None:
        super().__init__()
        self._unsaved: dict[tuple[str, str], str] = {}
        self.generation = 0  # bumped by forget(): text anonymized before that is stale

    def placeholder_for(self, scope: str, kind: str, digest: str) -> str:
        with self._lock:
            if scope not in self._by_scope:
                raise ScopeNotLoaded(f"placeholder scope {scope!r} was not loaded")
            return super().placeholder_for(scope, kind, digest)

    def _numbered(self, scope: str, digest: str, placeholder: str) -> None:
        self._unsaved[scope, digest] = placeholder

    async def ensure_loaded(
        self, conn: asyncpg.Pool | asyncpg.Connection, scopes: Iterable[str]
    ) -> None:
        missing = sorted({s for s in scopes if s not in self._by_scope})
        if not missing:
            return
        rows = await conn.fetch(
            "SELECT scope, digest, placeholder FROM collector_placeholders"
            " WHERE scope = ANY($1::text[])",
            missing,
        )
        loaded: dict[str, dict[str, str]] = {scope: {} for scope in missing}
        for r in rows:
            loaded[r["scope"]][r["digest"]] = r["placeholder"]
        for scope, mapping in loaded.items():
            self.restore(scope, mapping)

    async def save(self, conn: asyncpg.Connection) -> list[tuple[str, str]]:
        """Insert numbers handed out since the last :meth:`saved`; inside the batch transaction."""
        with self._lock:
            items = list(self._unsaved.items())
        if not items:
            return []
        scopes = [s for (s, _), _ in items]
        digests = [d for (_, d), _ in items]
        placeholders = [p for _, p in items]
        inserted = await conn.fetch(
            "INSERT INTO collector_placeholders (scope, digest, placeholder)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[])"
            " ON CONFLICT DO NOTHING RETURNING scope, digest",
            scopes,
            digests,
            placeholders,
        )
        if len(inserted) != len(items):
            done = {(r["scope"], r["digest"]) for r in inserted}
            rest = [(k, p) for k, p in items if k not in done]
            existing = await conn.fetch(
                "SELECT scope, digest, placeholder FROM collector_placeholders"
                " WHERE (scope, digest) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
                [s for (s, _), _ in rest],
                [d for (_, d), _ in rest],
            )
            same = {(r["scope"], r["digest"], r["placeholder"]) for r in existing}
            if any((s, d, p) not in same for (s, d), p in rest):
                raise PlaceholderConflict(
                    f"placeholder numbering changed concurrently in scopes "
                    f"{sorted({s for (s, _), _ in rest})}"
                )
        return [k for k, _ in items]

    def saved(self, keys: Iterable[tuple[str, str]]) -> None:
        """Call after the transaction that ran :meth:`save` committed."""
        with self._lock:
            for key in keys:
                self._unsaved.pop(key, None)

    def forget(self, scopes: Iterable[str]) -> None:
        """Drop scopes from memory (they reload from the table on next use)."""
        with self._lock:
            self.generation += 1
            for scope in set(scopes):
                self._by_scope.pop(scope, None)
                for key in [k for k in self._next_index if k[0] == scope]:
                    del self._next_index[key]
                for key in [k for k in self._unsaved if k[0] == scope]:
                    del self._unsaved[key]
