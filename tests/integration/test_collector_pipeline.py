"""Collector core on the real PostgreSQL: join, filters, drops, idempotency, expiry, PII
placeholders across restarts, and the repository API the optimizer uses."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dspy_flywheel.collector.core import Collector
from dspy_flywheel.collector.events import RawMessage, Rejected
from dspy_flywheel.collector.maintenance import expire_pending
from dspy_flywheel.collector.policy import PolicyBook, WorkerPolicy, set_policy
from dspy_flywheel.contracts.codec import encode
from dspy_flywheel.contracts.events import ExecutionRecorded, FeedbackRecorded
from dspy_flywheel.contracts.ids import new_id
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.security.crypto import Cipher
from dspy_flywheel.settings import PostgresSettings
from dspy_flywheel.store import apply_migrations, create_pool
from dspy_flywheel.store.datasets import create_snapshot, list_snapshots
from dspy_flywheel.store.examples import load_training_examples
from dspy_flywheel.store.pool import connect

TOPICS = Topics("unit-")
CIPHER = Cipher({"k1": os.urandom(32)})


@pytest.fixture
async def pool(pg_settings: PostgresSettings, unique: str) -> AsyncIterator[asyncpg.Pool]:
    schema = f"coll_{unique}"
    conn = await connect(pg_settings)
    await apply_migrations(conn, schema)
    pool = await create_pool(pg_settings, schema)
    yield pool
    await pool.close()
    await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    await conn.close()


def coords(raws: Sequence[RawMessage]) -> set[str]:
    return {r.coordinates for r in raws}


async def count_examples(pool: asyncpg.Pool, worker_id: str, since: datetime | None = None) -> int:
    """Stored examples of a worker, optionally only those created at or after ``since``."""
    value = await pool.fetchval(
        "SELECT count(*) FROM training_examples"
        " WHERE worker_id = $1 AND ($2::timestamptz IS NULL OR created_at >= $2)",
        worker_id,
        since,
    )
    return int(value)


class Harness:
    """A collector core plus helpers to build messages; DLQ rejects are captured."""

    def __init__(self, pool: asyncpg.Pool, hold_s: float = 0.0, **policy: Any) -> None:
        self.pool = pool
        self.rejects: list[Rejected] = []
        self.offset = 0
        self.policies = PolicyBook(WorkerPolicy(**policy), refresh_s=0)
        self.collector = Collector(pool, CIPHER, self.policies, self._dlq, TOPICS, hold_s=hold_s)

    async def _dlq(self, rejects: Sequence[Rejected]) -> None:
        self.rejects.extend(rejects)

    def _raw(self, topic: str, event: ExecutionRecorded | FeedbackRecorded) -> RawMessage:
        self.offset += 1
        encoded = encode(event)
        return RawMessage(
            topic, 0, self.offset, event.worker_id.encode(), encoded.value, encoded.headers
        )

    def execution(
        self,
        eid: str,
        inputs: dict[str, Any] | None = None,
        *,
        worker: str = "w1",
        success: bool = True,
        outputs: dict[str, Any] | None = None,
        metric: float | None = None,
    ) -> RawMessage:
        return self._raw(
            TOPICS.executions,
            ExecutionRecorded(
                worker_id=worker,
                worker_type="triage",
                execution_id=eid,
                inputs_json=json.dumps(inputs or {"ticket": f"ticket {eid}"}),
                outputs_json=json.dumps(outputs or {"category": "billing"}) if success else None,
                success=success,
                latency_ms=5.0,
                metric_score=metric,
                timestamp_ms=1_700_000_000_000,
            ),
        )

    def feedback(
        self,
        eid: str,
        label: str | None = '{"category": "refunds"}',
        *,
        score: float | None = 1.0,
        worker: str = "w1",
        ts: int = 1,
    ) -> RawMessage:
        return self._raw(
            TOPICS.feedback,
            FeedbackRecorded(
                execution_id=eid,
                worker_id=worker,
                label=label,
                score=score,
                timestamp_ms=1_700_000_000_000 + ts,
            ),
        )

    async def run(self, *batches: list[RawMessage]) -> list[RawMessage]:
        durable: list[RawMessage] = []
        for batch in batches:
            durable += await self.collector.process(batch)
        return durable

    async def drops(self) -> dict[tuple[str, str], int]:
        rows = await self.pool.fetch("SELECT worker_id, reason, count FROM collector_drops")
        return {(r["worker_id"], r["reason"]): r["count"] for r in rows}

    async def count(self, table: str) -> int:
        return int(await self.pool.fetchval(f"SELECT count(*) FROM {table}"))


async def test_feedback_before_or_after_execution_joins_through_the_db(
    pool: asyncpg.Pool,
) -> None:
    h = Harness(pool)  # hold_s=0: every unmatched half goes to collector_pending
    await h.run([h.feedback("a"), h.execution("b")])
    assert await h.count("collector_pending") == 2
    assert await h.count("training_examples") == 0
    await h.run([h.execution("a")], [h.feedback("b", "refunds")])
    assert await h.count("collector_pending") == 0
    examples = await load_training_examples(pool, CIPHER, "w1")
    assert [(e.execution_id, e.label) for e in examples] == [
        ("a", {"category": "refunds"}),
        ("b", {"category": "refunds"}),
    ]
    assert examples[0].inputs == {"ticket": "ticket a"}
    assert examples[0].outputs == {"category": "billing"}
    assert examples[0].score == 1.0


async def test_join_window_holds_halves_in_memory_until_their_partner_arrives(
    pool: asyncpg.Pool,
) -> None:
    h = Harness(pool, hold_s=60)
    first = [h.execution("a"), h.execution("b")]
    assert await h.run(first) == []  # nothing durable yet: both held, nothing acknowledged
    assert h.collector.held == 2
    assert await h.count("collector_pending") == 0
    fb = h.feedback("a")
    assert coords(await h.run([fb])) == coords([first[0], fb])
    assert h.collector.held == 1
    assert coords(await h.collector.flush()) == coords([first[1]])
    assert await h.count("collector_pending") == 1  # b waits in the DB now
    assert await h.count("training_examples") == 1


async def test_quality_filters_and_drop_counters(pool: asyncpg.Pool) -> None:
    h = Harness(pool, max_field_chars=200)
    await set_policy(pool, "strict", min_score=0.5)
    await h.run(
        [
            h.execution("failed", success=False),
            h.feedback("failed"),
            h.execution("empty", {"ticket": "   "}),
            h.execution("huge", {"ticket": "x" * 500}),
            h.execution("low", worker="strict"),
            h.feedback("low", score=0.2, worker="strict"),
            h.execution("ok", {"ticket": "same  text"}),
            h.feedback("ok"),
            h.execution("dup", {"ticket": "same text "}),
            h.feedback("dup"),
        ]
    )
    await h.run([h.execution("dup2", {"ticket": "same text"}), h.feedback("dup2")])
    assert await h.drops() == {
        ("w1", "failed"): 1,
        ("w1", "feedback_for_dropped"): 1,
        ("w1", "empty_inputs"): 1,
        ("w1", "oversized"): 1,
        ("strict", "low_score"): 1,
        ("w1", "duplicate"): 2,
    }
    assert [e.execution_id for e in await load_training_examples(pool, CIPHER, "w1")] == ["ok"]
    assert await count_examples(pool, "strict") == 0


async def test_redelivered_batch_changes_nothing(pool: asyncpg.Pool) -> None:
    h = Harness(pool)
    batch = [h.execution("a"), h.feedback("a"), h.execution("f", success=False), h.execution("c")]
    await h.run(batch)
    before = (
        await h.count("training_examples"),
        await h.count("collector_pending"),
        await h.drops(),
    )
    await h.run(batch, batch[::-1])  # redelivery after a crash, in any order
    after = (
        await h.count("training_examples"),
        await h.count("collector_pending"),
        await h.drops(),
    )
    assert before == after == (1, 2, {("w1", "failed"): 1})


async def test_unlabeled_success_then_late_feedback_updates_the_label(pool: asyncpg.Pool) -> None:
    h = Harness(pool, accept_unlabeled_success=True)
    await h.run([h.execution("a", metric=0.7)])
    [stored] = await load_training_examples(pool, CIPHER, "w1")
    assert stored.label == {"category": "billing"}  # falls back to outputs
    assert stored.score == 0.7
    assert await load_training_examples(pool, CIPHER, "w1", labeled_only=True) == []
    await h.run([h.feedback("a", "returns", score=0.9, ts=5)])  # bare string label
    [labeled] = await load_training_examples(pool, CIPHER, "w1", labeled_only=True)
    assert labeled.label == {"category": "returns"}
    assert labeled.score == 0.9
    await h.run([h.feedback("a", "older", ts=1)])  # older feedback does not win
    [still] = await load_training_examples(pool, CIPHER, "w1")
    assert still.label == {"category": "returns"}
    assert (await h.drops())[("w1", "superseded_feedback")] == 1


async def test_expired_join_state_is_counted(pool: asyncpg.Pool) -> None:
    h = Harness(pool, pending_ttl_s=0.001)
    await h.run([h.execution("lonely"), h.feedback("orphan"), h.execution("bad", success=False)])
    assert await h.count("collector_pending") == 3
    expired = await expire_pending(pool)
    assert expired == {("w1", "no_feedback"): 1, ("w1", "orphan_feedback"): 1}
    assert await h.count("collector_pending") == 0
    assert (await h.drops())[("w1", "no_feedback")] == 1


async def test_placeholders_are_consistent_per_worker_and_across_restarts(
    pool: asyncpg.Pool,
) -> None:
    first = Harness(pool)
    await first.run(
        [
            first.execution("a", {"ticket": "mail ana@example.com"}),
            first.feedback("a"),
            first.execution("b", {"ticket": "again ana@example.com, cc bo@example.org"}),
            first.feedback("b"),
        ]
    )
    restarted = Harness(pool)  # a new process: numbering comes back from the table
    await restarted.run(
        [
            restarted.execution("c", {"ticket": "bo@example.org and cy@example.net"}),
            restarted.feedback("c"),
            restarted.execution("d", {"ticket": "ana@example.com"}, worker="w2"),
            restarted.feedback("d", worker="w2"),
        ]
    )
    texts = {
        e.execution_id: e.inputs["ticket"]
        for w in ("w1", "w2")
        for e in await load_training_examples(pool, CIPHER, w)
    }
    assert texts == {
        "a": "mail <EMAIL_1>",
        "b": "again <EMAIL_1>, cc <EMAIL_2>",
        "c": "<EMAIL_2> and <EMAIL_3>",
        "d": "<EMAIL_1>",  # its own numbering in worker w2
    }
    digests = await pool.fetch("SELECT scope, digest FROM collector_placeholders")
    assert len(digests) == 4
    assert all("@" not in r["digest"] for r in digests)


async def test_repository_api(pool: asyncpg.Pool) -> None:
    h = Harness(pool)
    start = datetime.now(UTC) - timedelta(seconds=5)
    await h.run([x for i in range(5) for x in (h.execution(f"e{i}"), h.feedback(f"e{i}"))])
    examples = await load_training_examples(pool, CIPHER, "w1")
    assert [e.execution_id for e in examples] == [f"e{i}" for i in range(5)]
    assert [e.id for e in examples] == sorted(e.id for e in examples)
    newest = await load_training_examples(pool, CIPHER, "w1", limit=2)
    assert [e.execution_id for e in newest] == ["e3", "e4"]
    assert await count_examples(pool, "w1") == 5
    assert await count_examples(pool, "w1", since=start) == 5
    assert await count_examples(pool, "w1", since=datetime.now(UTC) + timedelta(hours=1)) == 0
    first = await create_snapshot(pool, "w1", [e.id for e in examples], "optimize job 1")
    second = await create_snapshot(pool, "w1", [examples[0].id], "optimize job 2")
    snaps = await list_snapshots(pool, "w1")
    assert [(s.id, s.version, len(s.example_ids)) for s in snaps] == [(first, 1, 5), (second, 2, 1)]


async def test_dead_letters_are_handed_over_once(pool: asyncpg.Pool) -> None:
    h = Harness(pool)
    junk = RawMessage(TOPICS.executions, 0, 999, b"w1", b"junk", [("event_id", new_id().encode())])
    await h.run([junk, h.execution("a"), h.feedback("a")], [junk])
    assert [(r.message, r.reason) for r in h.rejects] == [(junk, "corrupt_payload")]
    assert (await h.drops())[("w1", "dlq_corrupt_payload")] == 1
    assert await h.count("training_examples") == 1
