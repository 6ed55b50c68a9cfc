"""Dead-letter publishing: the original bytes, key and headers plus why the record was refused.

One header set for every consumer, added after the original headers:

``dlq_reason``     short code (``corrupt_payload``, ``unknown_schema``, ``invalid_record`` ...)
``dlq_error``      the message (the exception's type and text), at most 1000 characters
``dlq_source``     ``topic:partition:offset`` of the original
``dlq_consumer``   which consumer refused it (``collector``, ``trigger``, ``optimizer`` ...)
``dlq_retriable``  ``true`` / ``false``
``dlq_at_ms``      when it was refused (epoch ms)

The dead letter goes to ``<topic>.dlq`` with the original key, so one worker's letters stay in
order. A letter that would weigh more than ``MAX_LETTER_BYTES`` (the producer refuses about
1 MiB) keeps the first ``KEPT_BODY_BYTES`` of the value and the original headers of at most
1 KiB each, and says so: ``dlq_truncated`` (the original value's length), ``dlq_sha256`` (its
digest) and ``dlq_dropped_headers`` (names of the headers left out).

``dlq_sealed``     only when sealed: ``aes-256-gcm:<key id>``

A consumer whose records carry personal data (the collector) builds ``DeadLetters`` with a
:class:`~dspy_flywheel.security.crypto.Cipher` and a ``redact`` function: the value is then
stored AES-GCM-encrypted with the platform's key (associated data: ``dlq_source``), and the
error text is redacted before it goes into a header or a log line. :func:`open_sealed` gives
the value back to whoever holds the key (inspection, replay).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaProducer

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.metrics.kafka import note_dead_letters
from dspy_flywheel.security.crypto import Cipher

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 1000
INVALID_RECORD = "invalid_record"
HANDLER_ERROR = "handler_error"
MAX_LETTER_BYTES = 512 * 1024
KEPT_BODY_BYTES = 64 * 1024
KEPT_HEADER_BYTES = 1024
_RECORD_FAULTS = (ValueError, KeyError, TypeError)
SEALED_HEADER = "dlq_sealed"
SEAL_SCHEME = "aes-256-gcm"


class Source(Protocol):
    """What a dead letter is made from: a consumed record (aiokafka's or the collector's)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True)
class DeadLetter:
    source: Source
    reason: str
    error: str
    retriable: bool = False

    @classmethod
    def of(cls, source: Source, exc: BaseException) -> DeadLetter:
        """``reason``: the exception's ``reason`` code if it has one (the codec's errors do);
        else ``invalid_record`` for what a handler found wrong with the record's content and
        ``handler_error`` for anything else it could not do with it."""
        default = INVALID_RECORD if isinstance(exc, _RECORD_FAULTS) else HANDLER_ERROR
        return cls(
            source,
            getattr(exc, "reason", default),
            f"{type(exc).__name__}: {exc}",
            bool(getattr(exc, "retriable", False)),
        )

    def body(self) -> tuple[bytes | None, list[tuple[str, bytes]]]:
        """The value and original headers to send: as they were, or cut down to fit."""
        value, headers = self.source.value, list(self.source.headers)
        size = len(value or b"") + sum(len(k) + len(v or b"") for k, v in headers)
        if size <= MAX_LETTER_BYTES:
            return value, headers
        kept = [(k, v) for k, v in headers if len(v or b"") <= KEPT_HEADER_BYTES]
        dropped = [k for k, v in headers if len(v or b"") > KEPT_HEADER_BYTES]
        notes = [
            ("dlq_truncated", str(len(value or b"")).encode()),
            ("dlq_sha256", hashlib.sha256(value or b"").hexdigest().encode()),
            ("dlq_dropped_headers", ",".join(dropped).encode()[:KEPT_HEADER_BYTES]),
        ]
        return (value or b"")[:KEPT_BODY_BYTES], [*kept, *notes]

    def headers(
        self, consumer: str, now_ms: int, original: Sequence[tuple[str, bytes]] | None = None
    ) -> list[tuple[str, bytes]]:
        s = self.source
        return [
            *(s.headers if original is None else original),
            ("dlq_reason", self.reason.encode()),
            ("dlq_error", self.error[:MAX_ERROR_CHARS].encode(errors="replace")),
            ("dlq_source", f"{s.topic}:{s.partition}:{s.offset}".encode()),
            ("dlq_consumer", consumer.encode()),
            ("dlq_retriable", str(self.retriable).lower().encode()),
            ("dlq_at_ms", str(now_ms).encode()),
        ]


def _seal_aad(source: str) -> bytes:
    return f"dlq|{source}".encode()


def open_sealed(
    cipher: Cipher, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> bytes | None:
    """The value of a dead letter as it was consumed (decrypted when it was sealed)."""
    found = dict(headers)
    sealed = found.get(SEALED_HEADER)
    if sealed is None or value is None:
        return value
    scheme, _, key_id = sealed.decode().partition(":")
    if scheme != SEAL_SCHEME:
        raise ValueError(f"unknown dead-letter seal {scheme!r}")
    return cipher.decrypt(key_id, value, _seal_aad(found["dlq_source"].decode()))


class DeadLetters:
    """Publishes dead letters for one consumer (named in ``dlq_consumer``).

    With ``cipher``, values are sealed (encrypted) and ``redact`` (e.g. the PII anonymizer)
    rewrites the error text before it is published or logged.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        consumer: str,
        *,
        already_sent: set[str] | None = None,
        cipher: Cipher | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        """``already_sent``: ``topic:partition:offset`` of records already in their DLQ (for a
        consumer that reads a topic from its start on every run: ``bus.letters.sent_sources``);
        they are not sent again."""
        self._producer = producer
        self.consumer = consumer
        self._sent = already_sent
        self._cipher = cipher
        self._redact = redact

    async def send(self, source: Source, exc: BaseException) -> None:
        """Dead-letter one record refused with ``exc``; waits for the broker's ack."""
        await self.publish([DeadLetter.of(source, exc)])

    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        """Send all letters and wait until the broker has acknowledged every one."""
        now_ms = int(time.time() * 1000)
        futures = []
        for letter in letters:
            s = letter.source
            where = f"{s.topic}:{s.partition}:{s.offset}"
            if self._sent is not None:
                if where in self._sent:
                    continue
                self._sent.add(where)
            value, original = letter.body()
            if self._redact is not None:
                letter = DeadLetter(s, letter.reason, self._redact(letter.error), letter.retriable)
            headers = letter.headers(self.consumer, now_ms, original)
            if self._cipher is not None and value is not None:
                value = self._cipher.encrypt(value, _seal_aad(where))
                headers.append((SEALED_HEADER, f"{SEAL_SCHEME}:{self._cipher.active_key}".encode()))
            futures.append(
                await self._producer.send(
                    Topics.dlq(s.topic),
                    value=value,
                    key=s.key if s.key is None or len(s.key) <= KEPT_HEADER_BYTES else None,
                    headers=headers,
                )
            )
            log.warning(
                "sent %s[%d]@%d to the DLQ: %s", s.topic, s.partition, s.offset, letter.error
            )
        await asyncio.gather(*futures)
        for letter in letters:
            note_dead_letters(letter.source.topic, [letter.reason])
