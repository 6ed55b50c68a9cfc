"""One guard per consumed record: parse and handle it; set aside a record that is bad.

``RecordGuard(record, handle)`` parses the record (``decode`` by default) and awaits
``handle(parsed)``. A failure of the record's own (``is_bad_record``: it cannot be decoded or
its content is invalid) sends it to its topic's DLQ through ``DeadLetters`` (or, on a topic
this consumer does not own, is logged and skipped) and the guard returns None: the consumer
moves on. Any other failure is retried as ``retry`` says, then re-raised (no ``retry``: at
once), which stops the service; its offsets are not committed, so it resumes at that record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

from aiokafka.structs import ConsumerRecord

from dspy_flywheel.bus.dlq import DeadLetters
from dspy_flywheel.contracts.codec import Decoded, DecodeError, decode

log = logging.getLogger(__name__)

P = TypeVar("P")
T = TypeVar("T")
Record: TypeAlias = ConsumerRecord[bytes, bytes]
BAD_RECORD: tuple[type[Exception], ...] = (DecodeError, KeyError, TypeError, ValueError)


def is_bad_record(exc: BaseException) -> bool:
    """A failure of the record itself: retrying the same bytes cannot fix it."""
    return isinstance(exc, BAD_RECORD) and not getattr(exc, "retriable", False)


def decode_record(record: Record) -> Decoded:
    return decode(record.value or b"", record.headers)


@dataclass(frozen=True)
class Retry:
    """``attempts`` more tries after the first failure, waiting ``first_delay_s`` and then
    doubling delays (capped at ``max_delay_s``) between them."""

    attempts: int = 5
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0

    def delays(self) -> list[float]:
        return [self.first_delay_s] + [
            min(self.max_delay_s, 2.0**n) for n in range(self.attempts - 1)
        ]


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
        delays = self.retry.delays() if self.retry else []
        retries = iter(enumerate(delays, 1))
        while True:
            try:
                return await handle(self.parse(record))
            except Exception as exc:
                if is_bad_record(exc):
                    await self.set_aside(record, exc)
                    return None
                n, delay = next(retries, (0, 0.0))
                if not n and self.retry is None:
                    raise
                if not n:
                    raise RuntimeError(f"giving up on {_where(record)}") from exc
                log.warning(
                    "handling %s failed (%r); retry %d of %d in %.0f s",
                    _where(record),
                    exc,
                    n,
                    len(delays),
                    delay,
                )
                await asyncio.sleep(delay)

    async def set_aside(self, record: Record, exc: Exception) -> None:
        owned = self.dlq_topics is None or record.topic in self.dlq_topics
        if self.dead_letters is None or not owned:
            log.warning("skipping bad record %s: %s", _where(record), exc)
            return
        await self.dead_letters.send(record, exc)


def _where(record: Record) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"
