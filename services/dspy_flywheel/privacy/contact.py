"""E-mail addresses (phone numbers: :mod:`dspy_flywheel.privacy.phones`)."""

from __future__ import annotations

import re
from typing import Final

from dspy_flywheel.privacy.spans import EMAIL, PRIORITY, Span

_EMAIL: Final = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+'-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\w-])"
)


class EmailRecognizer:
    name = "email"

    def find(self, text: str) -> list[Span]:
        if "@" not in text:
            return []
        return [
            Span(m.start(), m.end(), EMAIL, PRIORITY[EMAIL], m.group().lower())
            for m in _EMAIL.finditer(text)
        ]
