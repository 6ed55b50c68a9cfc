"""The bus's pure parts: the record guard's decisions, dead-letter headers, the supervisor."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord

from dspy_flywheel.bus import (
    UNTIL_IT_WORKS,
    DeadLetter,
    RecordGuard,
    Retry,
    decode_record,
    every,
    is_retriable,
    retrying,
    supervise,
)
from dspy_flywheel.bus.dlq import KEPT_BODY_BYTES, MAX_LETTER_BYTES
from dspy_flywheel.bus.guard import Record
from dspy_flywheel.contracts.codec import CorruptPayload, Decoded, encode
from dspy_flywheel.contracts.events import FeedbackRecorded
from dspy_flywheel.contracts.topics import Topics

FAST = Retry(attempts=3, first_delay_s=0.0, max_delay_s=0.0)


def record(
    value: bytes, headers: list[tuple[str, bytes]] | None = None, topic: str = "t"
) -> Record:
    return ConsumerRecord(topic, 1, 7, 0, 0, b"w1", value, None, 0, 0, headers or [])


def feedback() -> Record:
    encoded = encode(
        FeedbackRecorded(
            worker_id="w1",
            execution_id="x1",
            label="a",
            timestamp_ms=1,
        ),
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
        return str(d.event.execution_id)

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
    def delays(retry: Retry) -> list[float | None]:
        assert retry.attempts is not None
        return [retry.delay(n) for n in range(retry.attempts)]

    assert delays(Retry()) == [1.0, 1.0, 2.0, 4.0, 8.0]
    assert delays(Retry(attempts=8, max_delay_s=10))[-2:] == [10, 10]
    assert Retry().delay(5) is None


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


# -- retry only what retrying can fix; everything else is the record's -----------------------


def _pg_error(sqlstate: str) -> Exception:
    exc = asyncpg.PostgresError(f"sqlstate {sqlstate}")
    exc.sqlstate = sqlstate  # type: ignore[attr-defined]  # set as the server would
    return exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (asyncpg.InterfaceError("pool is closing"), True),
        (_pg_error("08006"), True),  # connection failure
        (_pg_error("57P01"), True),  # admin shutdown (a restart)
        (_pg_error("40P01"), True),  # deadlock
        (KafkaConnectionError(), True),
        (_pg_error("22021"), False),  # invalid byte sequence (a NUL)
        (_pg_error("22008"), False),  # datetime field overflow
        (_pg_error("23505"), False),  # unique violation
        (MessageSizeTooLargeError(), False),
        (RuntimeError("a bug"), False),
        (CorruptPayload("junk"), False),
        (RecursionError(), False),
    ],
)
def test_only_a_broker_or_database_away_is_retriable(exc: Exception, expected: bool) -> None:
    assert is_retriable(exc) is expected


@pytest.mark.parametrize("failure", [RuntimeError("a bug"), _pg_error("22021"), RecursionError()])
async def test_a_failure_retrying_cannot_fix_is_dead_lettered_not_retried(
    failure: Exception,
) -> None:
    letters = Letters()
    calls = 0

    async def handle(d: Decoded) -> None:
        nonlocal calls
        calls += 1
        raise failure

    bad = feedback()
    assert await guard(letters, retry=UNTIL_IT_WORKS)(bad, handle) is None
    assert [src for src, _ in letters.sent] == [bad]
    assert calls == 1
    assert DeadLetter.of(bad, failure).reason == "handler_error"


async def test_until_it_works_keeps_retrying_a_database_away() -> None:
    letters = Letters()
    failures = [_pg_error("57P01")] * 7 + [ConnectionRefusedError()] * 3
    quick = Retry(attempts=None, first_delay_s=0.0, max_delay_s=0.0)

    async def handle(d: Decoded) -> str:
        if failures:
            raise failures.pop(0)
        return "stored"

    assert await guard(letters, retry=quick)(feedback(), handle) == "stored"
    assert letters.sent == []
    assert UNTIL_IT_WORKS.delay(1000) == UNTIL_IT_WORKS.max_delay_s


async def test_retrying_raises_at_once_what_retrying_cannot_fix() -> None:
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        raise _pg_error("22008")

    with pytest.raises(asyncpg.PostgresError):
        await retrying(step, "saving")
    assert calls == 1


def test_a_letter_too_big_for_the_producer_keeps_a_digest_and_a_truncated_body() -> None:
    """Regression: the DLQ copy of a ~1 MB record exceeded the producer's max_request_size,
    so the collector retried the batch for ever."""
    value = b"\xc3\x01" + bytes(range(256)) * 4096  # ~1 MB
    big = ConsumerRecord(
        "t", 0, 9, 0, 0, b"w1", value, None, 0, 0, [("event_id", b"e1"), ("blob", b"x" * 5000)]
    )
    body, original = DeadLetter.of(big, ValueError("not JSON")).body()
    assert body == value[:KEPT_BODY_BYTES]
    notes = dict(original)
    assert notes["dlq_truncated"] == str(len(value)).encode()
    assert notes["dlq_sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert notes["dlq_dropped_headers"] == b"blob"
    assert notes["event_id"] == b"e1"
    assert len(body) + sum(len(k) + len(v) for k, v in original) < MAX_LETTER_BYTES
    small = feedback()
    assert DeadLetter.of(small, ValueError("x")).body() == (small.value, list(small.headers))


def test_every_consumed_topic_has_exactly_one_dead_letter_owner() -> None:
    topics = Topics("p-")
    owned = [topics.dlq_owned_by(c) for c in ("collector", "trigger", "optimizer", "rollout")]
    consumed = {
        topics.executions,
        topics.feedback,
        topics.optimization_requests,
        topics.optimization_status,
        topics.program_updated,
        topics.program_acks,
        topics.trigger_config,
        topics.program_rollouts,
        topics.rollout_config,
        topics.rollout_commands,
    }
    assert set().union(*owned) == consumed
    assert sum(len(o) for o in owned) == len(consumed)  # no topic owned twice
    assert {Topics.dlq(t) for t in consumed} <= {s.name for s in topics.specs()}


async def test_sealed_dead_letters_hide_the_value_and_redact_the_error() -> None:
    """Issue 15: the collector's dead letters held raw events (and errors quoting them)."""
    import os

    from dspy_flywheel.bus import DeadLetters, open_sealed
    from dspy_flywheel.security.crypto import Cipher

    sent: list[dict[str, Any]] = []

    class Producer:
        async def send(self, topic: str, **kw: Any) -> asyncio.Future[None]:
            sent.append({"topic": topic, **kw})
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    cipher = Cipher({"k9": os.urandom(32)})
    value = b'{"text": "mail lena@example-mail.de"}'
    source = ConsumerRecord("t-executions", 2, 41, 0, 0, b"w1", value, None, 0, 0, [("h", b"v")])
    letters = DeadLetters(
        Producer(),  # type: ignore[arg-type]  # the two calls DeadLetters makes
        "collector",
        cipher=cipher,
        redact=lambda text: text.replace("lena@example-mail.de", "<EMAIL_1>"),
    )
    await letters.send(source, ValueError("bad inputs: lena@example-mail.de"))
    (letter,) = sent
    headers = dict(letter["headers"])
    assert letter["topic"] == "t-executions.dlq"
    assert b"lena@" not in letter["value"]
    assert headers["dlq_sealed"] == b"aes-256-gcm:k9"
    assert headers["dlq_error"] == b"ValueError: bad inputs: <EMAIL_1>"
    assert open_sealed(cipher, letter["value"], letter["headers"]) == value
    assert open_sealed(cipher, b"plain", [("dlq_source", b"x:0:1")]) == b"plain"  # not sealed
