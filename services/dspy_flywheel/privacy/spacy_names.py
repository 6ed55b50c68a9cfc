"""Optional person-name recognizer backed by a spaCy NER pipeline.

Not in the default registry: it needs ``spacy`` plus an installed English pipeline and
scans ~60-100 strings/s per core (tests/bench/pii_quality.py measures it), far slower than
the regex recognizers. Register it where recall on names matters more than throughput::

    registry.register(SpacyPersonRecognizer("en_core_web_sm"))
"""

from __future__ import annotations

import threading
from typing import Any

from dspy_flywheel.privacy.spans import PERSON, PRIORITY, Span


class SpacyPersonRecognizer:
    name = "spacy_person"

    def __init__(self, model: str = "en_core_web_sm", *, nlp: Any = None) -> None:
        if nlp is None:
            import spacy  # optional dependency, imported only when this recognizer is built

            nlp = spacy.load(model, disable=["parser", "lemmatizer", "tagger", "attribute_ruler"])
        self._nlp = nlp
        self._lock = threading.Lock()  # spaCy pipelines are not documented as thread-safe

    def find(self, text: str) -> list[Span]:
        if not any(c.isupper() for c in text):
            return []
        with self._lock:
            doc = self._nlp(text)
        spans = []
        for entity in doc.ents:
            if entity.label_ != "PERSON":
                continue
            value = entity.text.strip(" '\u2019\"")
            if not value or not value[0].isupper():
                continue
            start = entity.start_char + entity.text.index(value)
            canonical = " ".join(value.split()).casefold()
            spans.append(Span(start, start + len(value), PERSON, PRIORITY[PERSON], canonical))
        return spans
