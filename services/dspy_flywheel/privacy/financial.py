"""Credit-card numbers (Luhn + card network), IBANs (ISO 13616 mod 97) and US SSNs."""

from __future__ import annotations

import re
from typing import Final

from dspy_flywheel.privacy.spans import CREDIT_CARD, IBAN, PRIORITY, SSN, Span
from dspy_flywheel.privacy.validators import (
    IBAN_LENGTHS,
    card_network_known,
    digit_count,
    iban_valid,
    luhn_valid,
    ssn_valid,
)

# Patterns start with a character class so the scan skips ahead; the lookbehind that
# follows checks the character before the first one (2-char window).
_CARD: Final = re.compile(r"\d(?<![\w\-.]\d)(?:[ \-]?\d){11,18}(?![\w]|[\-.]\d)")


class CreditCardRecognizer:
    """13-19 digits, one kind of separator (space or dash) in groups of 3-6, Luhn-valid."""

    name = "credit_card"

    def find(self, text: str) -> list[Span]:
        spans: list[Span] = []
        if digit_count(text) < 13:
            return spans
        for match in _CARD.finditer(text):
            found = self._longest_valid(match.group())
            if found is not None:
                length, digits = found
                start = match.start()
                spans.append(
                    Span(start, start + length, CREDIT_CARD, PRIORITY[CREDIT_CARD], digits)
                )
        return spans

    @staticmethod
    def _longest_valid(candidate: str) -> tuple[int, str] | None:
        """The candidate, or its longest prefix of whole groups, that is a card number."""
        separators = {c for c in candidate if not c.isdigit()}
        if len(separators) > 1:
            return None
        if not separators:
            ok = 13 <= len(candidate) <= 19 and luhn_valid(candidate)
            return (len(candidate), candidate) if ok and card_network_known(candidate) else None
        groups = candidate.split(separators.pop())
        for count in range(len(groups), 1, -1):
            kept = groups[:count]
            digits = "".join(kept)
            if len(digits) < 13:
                return None
            if len(digits) > 19 or any(not 3 <= len(g) <= 6 for g in kept):
                continue
            if luhn_valid(digits) and card_network_known(digits):
                return len(digits) + count - 1, digits
        return None


_IBAN: Final = re.compile(r"[A-Za-z](?<![\w].)[A-Za-z]\d{2}(?: ?[A-Za-z0-9]){11,30}")


class IbanRecognizer:
    """Country code, check digits, BBAN of the country's length (spaces every 4 allowed)."""

    name = "iban"

    def find(self, text: str) -> list[Span]:
        spans: list[Span] = []
        if digit_count(text) < 8:
            return spans
        for match in _IBAN.finditer(text):
            candidate = match.group()
            expected = IBAN_LENGTHS.get(candidate[:2].upper())
            if expected is None:
                continue
            # Take exactly `expected` alphanumerics, then require a boundary after them.
            seen = 0
            end = match.start()
            for offset, char in enumerate(candidate):
                if char != " ":
                    seen += 1
                if seen == expected:
                    end = match.start() + offset + 1
                    break
            if seen != expected or (end < len(text) and text[end].isalnum()):
                continue
            compact = text[match.start() : end].replace(" ", "").upper()
            if iban_valid(compact):
                spans.append(Span(match.start(), end, IBAN, PRIORITY[IBAN], compact))
        return spans


_SSN: Final = re.compile(r"(\d)(?<![\w\-]\d)(\d\d)([\- ]?)(\d{2})\3(\d{4})(?![\w]|-\d)")
_SSN_CUE: Final = re.compile(r"(?i)\b(?:ssn|ss#|social security(?: number| no\.?| #)?)\W{0,4}$")


class SsnRecognizer:
    """``AAA-GG-SSSS`` (dash or space); nine bare digits only right after an SSN cue."""

    name = "ssn"

    def find(self, text: str) -> list[Span]:
        spans: list[Span] = []
        if digit_count(text) < 9:
            return spans
        for match in _SSN.finditer(text):
            first, rest, separator, group, serial = match.groups()
            area = first + rest
            if not ssn_valid(area, group, serial):
                continue
            if not separator and not _SSN_CUE.search(
                text[max(0, match.start() - 24) : match.start()]
            ):
                continue
            spans.append(
                Span(match.start(), match.end(), SSN, PRIORITY[SSN], area + group + serial)
            )
        return spans
