"""Anonymize parsed events in memory, before anything is written anywhere, and hash inputs.

Every string that reaches storage passes here: each string (and dict key) inside inputs,
outputs and labels, nested JSON included, and the feedback's free-text ``source``.

Short strings (output labels, categories, field names) repeat a lot: their anonymized form is
cached per worker scope. The cache holds results for the current placeholder numbering, so it is
cleared whenever the placeholder store forgets a scope.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from dspy_flywheel.collector.events import Execution, Feedback, Parsed, RawMessage, Rejected
from dspy_flywheel.metrics.collector import note_pii
from dspy_flywheel.privacy import Anonymizer, PrivacyError
from dspy_flywheel.privacy.anonymizer import AnonymizedText, walk_json
from dspy_flywheel.security.crypto import Cipher
from dspy_flywheel.store.examples import input_hash

log = logging.getLogger(__name__)

CACHEABLE_CHARS = 128


class Preparer:
    def __init__(self, anonymizer: Anonymizer, cipher: Cipher, cache_size: int = 65_536) -> None:
        self._anonymizer = anonymizer
        self._cipher = cipher
        self._cached_text = lru_cache(maxsize=cache_size)(self._text)

    def _text(self, text: str, scope: str) -> AnonymizedText:
        return self._anonymizer.anonymize(text, scope)

    def text(self, text: str, scope: str) -> str:
        short = len(text) <= CACHEABLE_CHARS
        done = self._cached_text(text, scope) if short else self._text(text, scope)
        if done.counts_by_kind:  # counted on every use, cached or not
            note_pii(done.counts_by_kind)
        return done.text

    def value(self, value: Any, scope: str) -> Any:
        """Every string of a JSON value anonymized (the privacy package's ``walk_json``)."""
        return walk_json(value, lambda text: self.text(text, scope))

    def clear_cache(self) -> None:
        self._cached_text.cache_clear()

    def prepare(self, items: Sequence[tuple[RawMessage, Parsed]]) -> list[Parsed]:
        """Anonymize executions and feedback in place; a failure turns the item into a reject."""
        out: list[Parsed] = []
        for raw, item in items:
            try:
                if isinstance(item, Execution):
                    scope = item.worker_id
                    item.inputs = self.value(item.inputs, scope)
                    item.outputs = self.value(item.outputs, scope)
                    item.input_hash = input_hash(self._cipher, scope, item.inputs)
                elif isinstance(item, Feedback):
                    item.label = self.value(item.label, item.worker_id)
                    # free text stored as training_examples.label_source ("reviewer:<EMAIL_1>")
                    item.source = self.text(item.source, item.worker_id)
                out.append(item)
            except (PrivacyError, ValueError, TypeError, RecursionError) as exc:
                log.error("anonymization failed for %s: %r", raw.coordinates, exc)
                out.append(Rejected(raw, "anonymization_failed", f"{type(exc).__name__}: {exc}"))
        return out
