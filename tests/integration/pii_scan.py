"""Scanners that prove no raw PII value reached storage: one pattern for many values, and a
pass over every column of every table of a schema."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import asyncpg

from dspy_flywheel.privacy.validators import literal_union


def pii_pattern(values: Iterable[str]) -> re.Pattern[str]:
    """One regex matching any of ``values`` (a trie: scanning stays linear)."""
    return re.compile(literal_union(set(values)))


async def assert_no_raw_pii(pool: asyncpg.Pool, schema: str, pattern: re.Pattern[str]) -> int:
    """Scan every column of every table in ``schema``; returns the number of values read."""
    tables = [
        r[0]
        for r in await pool.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
    ]
    assert "training_examples" in tables
    scanned = 0
    for table in tables:
        async with pool.acquire() as conn, conn.transaction():
            async for row in conn.cursor(f'SELECT * FROM "{schema}"."{table}"', prefetch=2000):
                for column, value in row.items():
                    if value is None:
                        continue
                    text = (
                        bytes(value).decode("latin-1")
                        if isinstance(value, bytes | memoryview)
                        else json.dumps(value)
                        if isinstance(value, dict | list)
                        else str(value)
                    )
                    found = pattern.search(text)
                    assert found is None, f"raw PII {found.group()!r} in {table}.{column}"
                    scanned += 1
    return scanned
