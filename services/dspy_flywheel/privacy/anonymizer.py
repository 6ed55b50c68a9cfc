"""Replace PII with consistent placeholders before anything is stored."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from dspy_flywheel.privacy.errors import RecognizerError, UnsupportedValueError
from dspy_flywheel.privacy.placeholders import (
    InMemoryPlaceholderStore,
    PlaceholderStore,
    value_digest,
)
from dspy_flywheel.privacy.registry import default_recognizers
from dspy_flywheel.privacy.spans import Recognizer, Span, resolve_overlaps

logger = logging.getLogger(__name__)

JsonValue: TypeAlias = (
    str | int | float | bool
    | Mapping[str, "JsonValue"] | list["JsonValue"] | tuple["JsonValue", ...] | None
)  # fmt: skip
MIN_KEY_BYTES: Final = 16


@dataclass(frozen=True, slots=True)
class AnonymizedText:
    text: str
    counts_by_kind: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AnonymizedValue:
    value: JsonValue
    counts_by_kind: Mapping[str, int] = field(default_factory=dict)


class Anonymizer:
    """Finds PII with the given recognizers and replaces each value with ``<KIND_n>``.

    Thread-safe: recognizers hold no per-call state and the placeholder store locks.
    A recognizer that raises aborts the call with :class:`RecognizerError` (fail closed).
    """

    def __init__(
        self,
        key: bytes,
        recognizers: Iterable[Recognizer] | None = None,
        *,
        store: PlaceholderStore | None = None,
    ) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self._recognizers = recognizers if recognizers is not None else default_recognizers()
        self.store: PlaceholderStore = store if store is not None else InMemoryPlaceholderStore()

    def find(self, text: str) -> list[Span]:
        """Non-overlapping spans in text order."""
        found: list[Span] = []
        for recognizer in self._recognizers:
            try:
                spans = recognizer.find(text)
            except Exception as exc:
                logger.error("recognizer %s failed on a %d-char text", recognizer.name, len(text))
                raise RecognizerError(recognizer.name, exc) from exc
            if spans:
                found += spans
        if not found:
            return found
        size = len(text)
        found = [s for s in found if s.end <= size]
        return resolve_overlaps(found) if len(found) > 1 else found

    def anonymize(self, text: str, scope: str) -> AnonymizedText:
        counts: Counter[str] = Counter()
        return AnonymizedText(self._replace(text, scope, counts), dict(counts))

    def anonymize_value(self, value: JsonValue, scope: str) -> AnonymizedValue:
        """Anonymize every string (dict keys included) of a JSON-like value (``walk_json``)."""
        counts: Counter[str] = Counter()
        found = walk_json(value, lambda text: self._replace(text, scope, counts))
        return AnonymizedValue(found, dict(counts))

    def _replace(self, text: str, scope: str, counts: Counter[str]) -> str:
        spans = self.find(text)
        if not spans:
            return text
        parts: list[str] = []
        position = 0
        for span in spans:
            canonical = (
                span.canonical if span.canonical is not None else text[span.start : span.end]
            )
            digest = value_digest(self._key, scope, span.kind, canonical)
            parts.append(text[position : span.start])
            parts.append(self.store.placeholder_for(scope, span.kind, digest))
            position = span.end
            counts[span.kind] += 1
        parts.append(text[position:])
        return "".join(parts)


def walk_json(value: JsonValue, replace: Callable[[str], str]) -> JsonValue:
    """``value`` with ``replace`` applied to every string, dict keys included. An int of 7 or
    more digits whose digits are one PII value (a card or phone number stored as a number)
    becomes its placeholder string; other scalars are kept."""
    if isinstance(value, str):
        return replace(value)
    if isinstance(value, dict | Mapping):
        return {replace(str(k)): walk_json(v, replace) for k, v in value.items()}
    if isinstance(value, list):
        return [walk_json(item, replace) for item in value]
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        if abs(value) < 1_000_000:
            return value
        replaced = replace(digits := str(value))
        return value if replaced == digits else replaced
    if isinstance(value, tuple):
        return tuple(walk_json(item, replace) for item in value)
    raise UnsupportedValueError(f"cannot anonymize a {type(value).__name__}")
