"""The bus's pure parts: the record guard's decisions, dead-letter headers, the supervisor."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from dspy_flywheel.bus import DeadLetter, RecordGuard, Retry, decode_record, every, supervise
from dspy_flywheel.bus.guard import Record
from dspy_flywheel.contracts.codec import CorruptPayload, Decoded, encode

FAST = Retry(attempts=3, first_delay_s=0.0, max_delay_s=0.0)


def record(
    value: bytes, headers: list[tuple[str, bytes]] | None = None, topic: str = "t"
) -> Record:
    return ConsumerRecord(topic, 1, 7, 0, 0, b"w1", value, None, 0, 0, headers or [])


def feedback() -> Record:
    encoded = encode(
        "FeedbackRecorded",
        {"worker_id": "w1", "execution_id": "x1", "label": "a", "timestamp_ms": 1},
    )
    return record(encoded.value, encoded.headers)


class Letters:
    """Collects what the guard dead-letters (the broker part is covered in integration)."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, BaseException]] = []

    async def send(self, source: Any, exc: BaseException) -> None:
        self.sent.append((source, exc))


def guard(letters: Letters, **kw: Any) -> RecordGuard[Decoded]:
    return RecordGuard(letters, decode_record, **kw)  # type: ignore[arg-type]  # duck-typed


async def test_a_good_record_reaches_the_handler_and_its_result_comes_back() -> None:
    letters = Letters()

    async def handle(d: Decoded) -> str:
        return str(d.record["execution_id"])

    assert await guard(letters)(feedback(), handle) == "x1"
    assert letters.sent == []


@pytest.mark.parametrize(
    ("value", "failure"),
    [
        (b"not avro at all", None),  # decode fails
        (None, KeyError("label")),  # handler finds the record invalid
        (None, ValueError("bad JSON")),
    ],
)
async def test_a_bad_record_is_dead_lettered_once_and_the_guard_returns_none(
    value: bytes | None, failure: Exception | None
) -> None:
    letters = Letters()
    calls = 0

    async def handle(d: Decoded) -> str:
        nonlocal calls
        calls += 1
        if failure is not None:
            raise failure
        return "handled"

    bad = record(value) if value is not None else feedback()
    assert await guard(letters, retry=FAST)(bad, handle) is None
    assert [src for src, _ in letters.sent] == [bad]
    assert calls == (1 if failure is not None else 0)  # a bad record is never retried


async def test_a_bad_record_of_a_topic_the_consumer_does_not_own_is_skipped() -> None:
    letters = Letters()

    async def handle(d: Decoded) -> None:
        raise AssertionError("not reached")

    result = await guard(letters, dlq_topics={"owned"})(record(b"junk", topic="other"), handle)
    assert result is None
    assert letters.sent == []


async def test_a_failure_retrying_can_fix_is_retried_until_it_succeeds() -> None:
    letters = Letters()
    failures = [ConnectionError("db away"), TimeoutError()]

    async def handle(d: Decoded) -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    assert await guard(letters, retry=FAST)(feedback(), handle) == "ok"
    assert letters.sent == []


async def test_retries_give_up_with_the_last_failure_and_nothing_is_dead_lettered() -> None:
    letters = Letters()
    attempts = 0

    async def handle(d: Decoded) -> None:
        nonlocal attempts
        attempts += 1
        raise ConnectionError("db away")

    with pytest.raises(RuntimeError, match=r"giving up on t\[1\]@7") as info:
        await guard(letters, retry=FAST)(feedback(), handle)
    assert isinstance(info.value.__cause__, ConnectionError)
    assert attempts == 1 + FAST.attempts
    assert letters.sent == []


async def test_without_retry_a_failure_of_the_handler_propagates_at_once() -> None:
    async def handle(d: Decoded) -> None:
        raise ConnectionError("db away")

    with pytest.raises(ConnectionError):
        await guard(Letters())(feedback(), handle)


def test_retry_delays_start_small_double_and_are_capped() -> None:
    assert Retry().delays() == [1.0, 1.0, 2.0, 4.0, 8.0]
    assert Retry(attempts=8, max_delay_s=10).delays()[-2:] == [10, 10]


def test_dead_letter_headers_keep_the_original_ones_and_say_why() -> None:
    source = record(b"junk", [("event_id", b"e1"), ("traceparent", b"00-x")])
    letter = DeadLetter.of(source, CorruptPayload("short body " + "x" * 2000))
    headers = letter.headers("trigger", now_ms=123)
    assert headers[:2] == [("event_id", b"e1"), ("traceparent", b"00-x")]
    added = dict(headers[2:])
    assert added["dlq_reason"] == b"corrupt_payload"
    assert added["dlq_error"].startswith(b"CorruptPayload: short body")
    assert len(added["dlq_error"]) == 1000
    assert added["dlq_source"] == b"t:1:7"
    assert added["dlq_consumer"] == b"trigger"
    assert added["dlq_retriable"] == b"false"
    assert added["dlq_at_ms"] == b"123"
    assert DeadLetter.of(source, KeyError("x")).reason == "invalid_record"


async def test_supervise_stops_every_loop_when_one_fails_and_re_raises_it() -> None:
    stop = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async def failing() -> None:
        await asyncio.sleep(0.01)
        raise ConnectionError("broker away")

    with pytest.raises(ConnectionError, match="broker away"):
        await supervise({"a": forever(), "b": failing()}, stop)
    assert stop.is_set()
    assert cancelled.is_set()


async def test_supervise_returns_when_stop_is_set_and_signals_ready_once_started() -> None:
    stop, ready, joined = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def intake() -> None:
        joined.set()
        await asyncio.Event().wait()

    async def operator() -> None:
        await ready.wait()
        stop.set()

    await asyncio.wait_for(
        asyncio.gather(
            supervise({"intake": intake()}, stop, ready=ready, ready_when=joined), operator()
        ),
        5,
    )
    assert ready.is_set()


async def test_supervise_does_not_signal_ready_when_a_loop_ends_before_it_is() -> None:
    ready, never = asyncio.Event(), asyncio.Event()

    async def broken() -> None:
        raise OSError("no broker")

    with pytest.raises(OSError, match="no broker"):
        await supervise({"intake": broken()}, asyncio.Event(), ready=ready, ready_when=never)
    assert not ready.is_set()


async def test_every_survives_a_failing_run_or_ends_when_told_not_to() -> None:
    runs = 0
    third = asyncio.Event()

    async def job() -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            third.set()
        if runs == 1:
            raise ValueError("first run fails")

    task = asyncio.create_task(every(0.001, job, "job"))
    await asyncio.wait_for(third.wait(), 5)
    task.cancel()
    runs = 0
    with pytest.raises(ValueError, match="first run fails"):
        await every(0.001, job, "job", survive_errors=False)
