"""The bus on the real broker and database: the group consumer loop with its record guard and
dead letters, reading every partition from stored positions, the outbox relay."""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition

from dspy_flywheel.bus import (
    DeadLetters,
    OutboxRelay,
    RecordGuard,
    consume_group,
    decode_record,
    open_consumer,
    publish,
    read_to_end,
    stop_consumer,
)
from dspy_flywheel.bus.guard import Record
from dspy_flywheel.contracts.codec import Decoded
from dspy_flywheel.contracts.events import FeedbackRecorded
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.store import outbox
from tests.integration.helpers import until


def feedback(execution_id: str) -> FeedbackRecorded:
    return FeedbackRecorded(worker_id="w1", execution_id=execution_id, label="a", timestamp_ms=1)


async def read_all(kafka: KafkaSettings, topic: str) -> list[Record]:
    consumer = await open_consumer(kafka, [topic])
    found: list[Record] = []

    async def keep(record: Record) -> None:
        found.append(record)

    try:
        await read_to_end(consumer, keep)
    finally:
        await stop_consumer(consumer)
    return found


async def test_group_loop_handles_good_records_dead_letters_bad_ones_and_commits(
    kafka_settings: KafkaSettings, topics: Topics, group_id: str, producer: AIOKafkaProducer
) -> None:
    topic = topics.feedback
    await publish(producer, topic, "w1", feedback("x1"))
    await producer.send_and_wait(topic, b"\xc3\x01garbage", key=b"w1", headers=[("h", b"v")])
    invalid = await publish(producer, topic, "w1", feedback("invalid"))
    await publish(producer, topic, "w1", feedback("x2"))

    handled: list[str] = []

    async def handle(d: Decoded) -> None:
        if d.event.execution_id == "invalid":
            raise ValueError("execution id refused")
        handled.append(d.event.execution_id)

    stop = asyncio.Event()
    guard = RecordGuard(DeadLetters(producer, "bus-test"), decode_record)
    loop = asyncio.create_task(consume_group(kafka_settings, topic, group_id, guard, handle, stop))

    async def all_handled() -> bool:
        return len(handled) == 2

    await until(all_handled, "both good records handled")
    letters = await until(
        lambda: _at_least(kafka_settings, Topics.dlq(topic), 2), "two dead letters"
    )
    stop.set()
    await asyncio.wait_for(loop, 10)

    assert handled == ["x1", "x2"]
    by_reason = {dict(r.headers)["dlq_reason"]: r for r in letters}
    assert set(by_reason) == {b"corrupt_payload", b"invalid_record"}
    garbage, refused = by_reason[b"corrupt_payload"], by_reason[b"invalid_record"]
    assert garbage.value == b"\xc3\x01garbage"
    assert garbage.key == b"w1"
    assert garbage.headers[0] == ("h", b"v")
    assert refused.value == invalid.value
    assert dict(refused.headers)["event_id"] == invalid.event_id.encode()
    for letter in letters:
        h = dict(letter.headers)
        assert h["dlq_consumer"] == b"bus-test"
        assert h["dlq_retriable"] == b"false"
        assert h["dlq_source"].startswith(f"{topic}:".encode())
        assert int(h["dlq_at_ms"]) > 0
    assert b"execution id refused" in dict(refused.headers)["dlq_error"]

    # the group committed past every record, the dead-lettered ones included
    consumer = await open_consumer(kafka_settings, [topic], group_id=group_id)
    try:
        tps = [TopicPartition(topic, p) for p in range(topics.partitions)]
        ends = await consumer.end_offsets(tps)
        committed = {tp: await consumer.committed(tp) or 0 for tp in tps}
        assert committed == ends
    finally:
        await stop_consumer(consumer)


async def _at_least(kafka: KafkaSettings, topic: str, n: int) -> list[Record] | None:
    found = await read_all(kafka, topic)
    return found if len(found) >= n else None


async def test_every_partition_reader_resumes_from_stored_positions(
    kafka_settings: KafkaSettings, topics: Topics, producer: AIOKafkaProducer
) -> None:
    topic = topics.feedback
    for i in range(6):
        await publish(producer, topic, f"w{i}", feedback(f"x{i}"))
    first = await read_all(kafka_settings, topic)
    assert len(first) == 6
    positions = {(r.topic, r.partition): r.offset for r in first if r.offset > 0}
    consumer = await open_consumer(kafka_settings, [topic], positions=positions)
    seen: list[tuple[int, int]] = []

    async def keep(record: Record) -> None:
        seen.append((record.partition, record.offset))

    try:
        await read_to_end(consumer, keep)
    finally:
        await stop_consumer(consumer)
    expected = [(r.partition, r.offset) for r in first]
    expected = [
        (p, o) for p, o in expected if (topic, p) not in positions or o >= positions[(topic, p)]
    ]
    assert sorted(seen) == sorted(expected)
    assert len(seen) < 6  # the stored positions were honoured


async def test_outbox_relay_publishes_committed_events_once_with_their_event_ids(
    kafka_settings: KafkaSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    db_pool: asyncpg.Pool,
    unique: str,
) -> None:
    async with db_pool.acquire() as conn, conn.transaction():
        ids = [
            await outbox.add_status(
                conn, topics.optimization_status, f"{unique}-{i}", "w1", "queued", progress=0.0
            )
            for i in range(3)
        ]
    sent: list[str] = []
    relay = OutboxRelay(
        outbox.OutboxTable(db_pool), producer, on_sent=lambda e: sent.append(e.event_id)
    )
    while await relay.relay_once():  # rows other tests of this session left are sent too
        pass
    assert [e for e in sent if e in ids] == ids  # in commit order
    assert await relay.relay_once() == 0
    records = await read_all(kafka_settings, topics.optimization_status)
    decoded = [decode_record(r) for r in records]
    assert sorted(d.event_id or "" for d in decoded) == sorted(ids)  # each exactly once
    assert {d.event.job_id for d in decoded} == {f"{unique}-{i}" for i in range(3)}
    unsent = await db_pool.fetchval(
        "SELECT count(*) FROM optimizer_outbox WHERE event_id = ANY($1) AND published_at IS NULL",
        ids,
    )
    assert unsent == 0


async def test_outbox_relay_sets_aside_rows_that_can_never_be_sent_and_sends_the_rest(
    kafka_settings: KafkaSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    db_pool: asyncpg.Pool,
    unique: str,
) -> None:
    """Before, one such row failed its whole batch on every try, and nothing after it left."""
    topic = topics.optimization_status
    async with db_pool.acquire() as conn, conn.transaction():
        first = await outbox.add_status(conn, topic, f"{unique}-a", "w1", "queued")
        too_large = await outbox.add_status(  # over the producer's 1 MiB request limit
            conn, topic, f"{unique}-big", "w1", "failed", message="x" * 1_100_000
        )
        await conn.execute(  # a stored record that is no longer the event its type names
            "INSERT INTO optimizer_outbox (event_id, topic, key, event_type, record)"
            " VALUES ($1, $2, 'w1', 'OptimizationStatusChanged', '{\"job_id\": 1}')",
            f"{unique}-undecodable",
            topic,
        )
        last = await outbox.add_status(conn, topic, f"{unique}-b", "w1", "queued")
    sent: list[str] = []
    relay = OutboxRelay(
        outbox.OutboxTable(db_pool), producer, on_sent=lambda e: sent.append(e.event_id)
    )
    while await relay.relay_once():
        pass
    assert [e for e in sent if e in (first, last)] == [first, last]
    assert too_large not in sent
    rows = await db_pool.fetch(
        "SELECT event_id, published_at, dead_at, dead_reason FROM optimizer_outbox"
        " WHERE event_id = ANY($1)",
        [first, too_large, f"{unique}-undecodable", last],
    )
    state = {r["event_id"]: r for r in rows}
    for sendable in (first, last):
        assert state[sendable]["published_at"] is not None
        assert state[sendable]["dead_at"] is None
    assert state[too_large]["published_at"] is None
    assert state[too_large]["dead_reason"].startswith("MessageSizeTooLargeError")
    undecodable = state[f"{unique}-undecodable"]
    assert undecodable["published_at"] is None
    assert undecodable["dead_at"] is not None
    assert "InvalidEvent" in undecodable["dead_reason"]
    assert await relay.relay_once() == 0  # set aside for good, not retried
    jobs = {decode_record(r).event.job_id for r in await read_all(kafka_settings, topic)}
    assert {f"{unique}-a", f"{unique}-b"} <= jobs
    assert f"{unique}-big" not in jobs
