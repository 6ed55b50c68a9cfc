"""One guard per consumed record: parse and handle it; set aside a record that is bad.

``RecordGuard(record, handle)`` parses the record (``decode`` by default) and awaits
``handle(parsed)``. A failure that retrying cannot fix (``bus.errors.is_retriable`` is False:
the record cannot be decoded, its content is invalid, the database refuses a value, the
handler cannot process it) sends it to its topic's DLQ through ``DeadLetters`` (or, on a
topic this consumer does not own, is logged and skipped) and the guard returns None: the
consumer moves on. A retriable failure (broker or database away) is retried as ``retry``
says: with backoff, for ever by default (``Retry(attempts=None)``), or up to ``attempts``
times and then re-raised; no ``retry``: re-raised at once. Offsets are committed by the
caller after the guard returns, so a re-raised failure resumes at that record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from dspy_flywheel.bus.dlq import DeadLetters
from dspy_flywheel.bus.errors import is_retriable
from dspy_flywheel.contracts.codec import Decoded, InvalidRecord, decode
from dspy_flywheel.contracts.topics import Topics

log = logging.getLogger(__name__)

P = TypeVar("P")
T = TypeVar("T")
Record: TypeAlias = ConsumerRecord[bytes, bytes]


def is_bad_record(exc: BaseException) -> bool:
    """A failure of the record itself: retrying the same bytes cannot fix it."""
    return isinstance(exc, Exception) and not is_retriable(exc)


def decode_record(record: Record) -> Decoded:
    return decode(record.value or b"", record.headers)


def decoder_for(topics: Topics) -> Callable[[Record], Decoded]:
    """``decode_record`` that also refuses an event of another type than its topic carries."""

    def parse(record: Record) -> Decoded:
        decoded = decode_record(record)
        expected = topics.event_type_of(record.topic)
        if expected is not None and decoded.event_type != expected:
            raise InvalidRecord(
                "unexpected_event_type", f"{decoded.event_type} on {record.topic} ({expected})"
            )
        return decoded

    return parse


@dataclass(frozen=True)
class Retry:
    """Retries of a retriable failure: wait ``first_delay_s``, then doubling delays capped at
    ``max_delay_s``; ``attempts`` more tries after the first failure (None: until it works)."""

    attempts: int | None = 5
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0

    def delay(self, retry: int) -> float | None:
        """The wait before retry number ``retry`` (0-based); None once attempts are used up."""
        if self.attempts is not None and retry >= self.attempts:
            return None
        return self.first_delay_s if retry == 0 else min(self.max_delay_s, 2.0 ** (retry - 1))


UNTIL_IT_WORKS = Retry(attempts=None)
_NO_RETRY = Retry(attempts=0)


async def retrying(step: Callable[[], Awaitable[T]], what: str, retry: Retry = UNTIL_IT_WORKS) -> T:
    """``step()``, retried as ``retry`` says while it fails for a retriable reason (a broker or
    database away); any other failure is raised at once."""
    attempt = 0
    while True:
        try:
            return await step()
        except Exception as exc:
            delay = retry.delay(attempt) if is_retriable(exc) else None
            if delay is None:
                raise
            attempt += 1
            log.warning("%s failed (%r); retry %d in %.1f s", what, exc, attempt, delay)
            await asyncio.sleep(delay)


class RecordGuard(Generic[P]):
    def __init__(
        self,
        dead_letters: DeadLetters | None,
        parse: Callable[[Record], P],
        *,
        retry: Retry | None = None,
        dlq_topics: Collection[str] | None = None,
    ) -> None:
        """``dlq_topics``: the topics whose bad records this consumer dead-letters (None: all;
        those of other topics are logged and skipped)."""
        self.dead_letters = dead_letters
        self.parse = parse
        self.retry = retry
        self.dlq_topics = dlq_topics

    async def __call__(self, record: Record, handle: Callable[[P], Awaitable[T]]) -> T | None:
        where = _where(record)
        try:
            return await retrying(
                lambda: handle(self.parse(record)), f"handling {where}", self.retry or _NO_RETRY
            )
        except Exception as exc:
            if is_bad_record(exc):
                await self.set_aside(record, exc)
                return None
            if self.retry is None:
                raise
            raise RuntimeError(f"giving up on {where}") from exc

    async def set_aside(self, record: Record, exc: Exception) -> None:
        """Dead-letter ``record`` (if this consumer owns its topic's DLQ); a broker that is
        away is waited for (the offset must not move past a record that is nowhere)."""
        owned = self.dlq_topics is None or record.topic in self.dlq_topics
        letters = self.dead_letters
        if letters is None or not owned:
            log.warning("skipping bad record %s: %s", _where(record), exc)
            return
        await retrying(lambda: letters.send(record, exc), f"dead-lettering {_where(record)}")


def _where(record: Record) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"


def owner_guard(producer: AIOKafkaProducer, topics: Topics, consumer: str) -> RecordGuard[Decoded]:
    """The guard of ``consumer`` (a service) over ``topics``: each record decoded for its topic;
    a bad one dead-lettered where ``consumer`` owns the DLQ (``contracts.topics.DLQ_OWNERS``),
    else skipped; any other failure retried until it works."""
    return RecordGuard(
        DeadLetters(producer, consumer),
        decoder_for(topics),
        dlq_topics=topics.dlq_owned_by(consumer),
        retry=UNTIL_IT_WORKS,
    )
