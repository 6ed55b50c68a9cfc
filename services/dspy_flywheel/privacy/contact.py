"""E-mail addresses and phone numbers.

Phone numbers are found by shape, then validated with ``phonenumbers`` (Google's
libphonenumber metadata, offline): international numbers need ``+`` or ``00``, national
numbers are read in ``default_region``. A bare 10-digit run or a 7-digit local number
counts only after a phone cue ("call", "tel:", "mobile"...), and a number right after an
order/invoice/ticket cue never does.
"""

from __future__ import annotations

import re
from typing import Final

import phonenumbers

from dspy_flywheel.privacy.spans import EMAIL, PHONE, PRIORITY, Span
from dspy_flywheel.privacy.validators import digit_count

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


_SEP = r"[ .\-]"
_PHONE: Final = re.compile(
    r"(?<![\w+/.\-])(?:"
    # international: + or 00, then digit groups (possessive, so no backtracking blow-up)
    r"(?P<intl>(?:\+|00)(?=[1-9])(?:[ .\-]?(?:\(\d{1,4}\)|\d++)){1,8}+)"
    # North American with separators: (415) 555-2671, 415-555-2671, 1-800-555-0199
    rf"|(?P<nanp>(?:1{_SEP}?)?(?:\(\d{{3}}\)[ ]?|\d{{3}}{_SEP})\d{{3}}{_SEP}\d{{4}})"
    r"|(?P<bare>\d{10})"  # needs a phone cue
    r"|(?P<trunk>0\d{1,4}(?:[ \-/]?\d{2,8}){1,3})"  # national format with trunk 0, needs a cue
    rf"|(?P<local>\d{{3}}{_SEP}\d{{4}})"  # needs a phone cue
    r")(?![\w]|[.\-/]\d)"
)
_PHONE_CUE: Final = re.compile(
    r"(?i)(?:\b(?:phone|tel|telephone|call|called|calling|cell|cellphone|mobile|mob|fax|text|"
    r"sms|whatsapp|dial|ring|reach(?: me)?|contact|landline|hotline)"
    r"|\b(?:my|your|his|her|our|their|phone|mobile|cell|contact|fax) number)\b\.?\s*"
    r"(?:\([a-z ]{1,12}\)\s*)?(?:me\s*)?(?:at|on|is|:)?\s*[:#]?\s*$"
)
_NOT_PHONE_CUE: Final = re.compile(
    r"(?i)(?:\b(?:order|invoice|inv|ticket|tracking|sku|serial|ref|reference|case|po|"
    r"account|acct|id|transaction|txn|build|version|ver|isbn|part|item|batch|lot|"
    r"confirmation|booking|policy|claim|customer|routing|aba|sort code|swift|bic|iban|vat|"
    r"tax|ein|tin|passport|license|licence|member|membership|student)"
    r"\s*(?:#|no\.?|number|id|nr\.?|code)?\s*[:#=]?|#)\s*$"
)


_NANP_REGIONS: Final = frozenset({"US", "CA"})


def _nanp_e164(candidate: str) -> str | None:
    """North American numbering plan: NXX area code (no N11, no N9X) and NXX exchange.

    Checked here rather than by phonenumbers, which costs ~40 us a call, for the common case.
    """
    digits = re.sub(r"\D", "", candidate)
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) != 10:
        return None
    area, exchange = digits[:3], digits[3:6]
    if area[0] in "01" or area[1] == "9" or area[1:] == "11":
        return None
    if exchange[0] in "01" or exchange[1:] == "11":
        return None
    return "+1" + digits


class PhoneRecognizer:
    name = "phone"

    def __init__(
        self,
        default_region: str = "US",
        national_regions: tuple[str, ...] = ("GB", "DE", "FR", "IN", "AU", "IT", "ES", "NL"),
    ) -> None:
        self.default_region = default_region
        # Regions tried, after a phone cue, for national numbers written with a trunk 0.
        self.national_regions = national_regions

    def find(self, text: str) -> list[Span]:
        spans: list[Span] = []
        if digit_count(text) < 7:
            return spans
        for match in _PHONE.finditer(text):
            before = text[max(0, match.start() - 32) : match.start()]
            if _NOT_PHONE_CUE.search(before):
                continue
            kind = match.lastgroup
            if kind in ("bare", "local", "trunk") and not _PHONE_CUE.search(before):
                continue
            candidate = match.group()
            end = match.end()
            if kind == "intl":
                found = self._international(candidate)
                if found is None:
                    continue
                length, canonical = found
                end = match.start() + length
            else:
                national = self._national(kind, candidate)
                if national is None:
                    continue
                canonical = national
            spans.append(Span(match.start(), end, PHONE, PRIORITY[PHONE], canonical))
        return spans

    def _national(self, kind: str | None, candidate: str) -> str | None:
        """Canonical form of a number written without a country code, or None."""
        if kind == "trunk":
            for region in (self.default_region, *self.national_regions):
                found = self._validate(candidate, region)
                if found is not None:
                    return found
            return None
        if kind == "local":
            digits = re.sub(r"\D", "", candidate)
            return None if digits[0] in "01" else digits
        if self.default_region in _NANP_REGIONS:
            return _nanp_e164(candidate)
        return self._validate(candidate, self.default_region)

    def _international(self, candidate: str) -> tuple[int, str] | None:
        """Longest valid prefix made of whole digit groups: (its length, E.164)."""
        number = "+" + candidate[2:] if candidate.startswith("00") else candidate
        offset = len(candidate) - len(number)
        cut = len(number)
        while cut > 0:
            prefix = number[:cut].rstrip(" .-")
            if sum(c.isdigit() for c in prefix) < 7:
                return None
            canonical = self._validate(prefix, None)
            if canonical is not None:
                return len(prefix) + offset, canonical
            cut = max(prefix.rfind(" "), prefix.rfind("-"), prefix.rfind("."), 0)
        return None

    @staticmethod
    def _validate(candidate: str, region: str | None) -> str | None:
        try:
            parsed = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(parsed):
            return None
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
