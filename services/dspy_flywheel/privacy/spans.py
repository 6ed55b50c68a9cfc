"""Spans, the recognizer protocol, built-in kinds and overlap resolution."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

EMAIL: Final = "EMAIL"
PHONE: Final = "PHONE"
CREDIT_CARD: Final = "CREDIT_CARD"
IBAN: Final = "IBAN"
SSN: Final = "SSN"
NATIONAL_ID: Final = "NATIONAL_ID"
IPV4: Final = "IPV4"
IPV6: Final = "IPV6"
SECRET: Final = "SECRET"
PERSON: Final = "PERSON"

BUILTIN_KINDS: Final = (
    EMAIL, PHONE, CREDIT_CARD, IBAN, SSN, NATIONAL_ID, IPV4, IPV6, SECRET, PERSON
)  # fmt: skip

# Higher wins when spans overlap; ties go to the longer span.
PRIORITY: Final[dict[str, int]] = {
    SECRET: 90,  # prefixed tokens (sk-, ghp_, AKIA...); generic key=value secrets use 45
    EMAIL: 80,
    IBAN: 75,
    CREDIT_CARD: 70,
    SSN: 65,
    NATIONAL_ID: 64,
    IPV6: 60,
    IPV4: 60,
    PHONE: 50,
    PERSON: 30,
}

KIND_PATTERN: Final = re.compile(r"[A-Z][A-Z0-9_]{0,31}")


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open range ``[start, end)`` of the scanned text holding one PII value.

    ``canonical`` is the normalized value (lower-cased e-mail, E.164 phone, digits of a
    card...) so that formatting variants of one value get the same placeholder.
    """

    start: int
    end: int
    kind: str
    priority: int = 50
    canonical: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"bad span range [{self.start}, {self.end})")
        if not KIND_PATTERN.fullmatch(self.kind):
            raise ValueError(f"kind must match {KIND_PATTERN.pattern}: {self.kind!r}")

    @property
    def length(self) -> int:
        return self.end - self.start

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


@runtime_checkable
class Recognizer(Protocol):
    """Finds PII of one or more kinds. Must be thread-safe (no mutable state per call)."""

    @property
    def name(self) -> str: ...

    def find(self, text: str) -> list[Span]: ...


def resolve_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Keep a non-overlapping subset: highest priority first, then longest, then earliest."""
    ranked = sorted(spans, key=lambda s: (-s.priority, -s.length, s.start))
    chosen: list[Span] = []
    for span in ranked:
        if not any(span.overlaps(kept) for kept in chosen):
            chosen.append(span)
    chosen.sort(key=lambda s: s.start)
    return chosen
