"""Phone numbers: fail closed where the text says "phone", stay precise where it does not.

A candidate is a run of digit groups joined by single separators (space, ``-``, ``.``,
`` / ``, ``(0)``/``(area)`` groups), with an optional extension (``ext. 12``, ``x42``). It is
a phone number, valid or not, assigned or not, when

* it starts with ``+`` (or ``00`` then a country code) and holds 7-15 digits; the longest
  prefix of whole groups that ``phonenumbers`` accepts is taken, else every group up to
  15 digits;
* a phone cue ("call me back on", "tel.", "mobile", "WhatsApp", "Handy", "portable",
  "celular"...) stands earlier in the same clause and the run holds 7-15 digits;
* without a cue: a North-American number with separators whose area code and exchange
  follow the numbering plan ("(415) 555-2671", "1-800-555-0199").

Never after an order / invoice / tracking / version cue, and never a date.
"""

from __future__ import annotations

import re
from typing import Final

import phonenumbers

from dspy_flywheel.privacy.spans import PHONE, PRIORITY, Span
from dspy_flywheel.privacy.validators import Cue, digit_count

_GROUP = r"(?:\(\d{1,5}\)|\d++)"
# Starts with a character class so the engine skips text without digits fast; the lookbehind
# after the first character checks the one before it; the branch re-reads the first one.
_CANDIDATE: Final = re.compile(
    r"[+\d(](?<![\w+/.,\-].)(?:(?<=\+)(?=[1-9])|(?<=\()\d{1,5}\)|(?<=\d)\d*+)"
    rf"(?:(?:[ .\-]|\s?/\s?)?{_GROUP}){{0,11}}+"
    r"(?P<ext>[ ,]*(?:ext\.?|extension|x|#|Durchwahl|DW|poste|ramal)[ .:]*\d{1,6})?"
    r"(?![\w]|[.,/\-]\d)",
    re.IGNORECASE,
)
_CUE: Final = Cue.in_clause(
    [
        "phone", "phones", "tel", "tél", "tele", "telephone", "telefon", "telefone", "telefono",
        "teléfono", "téléphone", "call", "called", "calling", "ring", "ringing", "cell",
        "cellphone", "mobile", "mobil", "mob", "handy", "portable", "celular", "movil", "móvil",
        "cel", "fax", "text", "texting", "sms", "whatsapp", "signal", "viber", "telegram", "dial",
        "reach", "reached", "reachable", "contact", "contactable", "joignable", "appeler",
        "appelez", "anrufen", "rufen", "ruf", "erreichbar", "ligar", "liga", "llamar", "landline",
        "festnetz", "hotline", "helpline", "line", "rufnummer", "durchwahl", "number",
    ]
)  # fmt: skip
# A cue after the number: "(03) 9123 4567 is my Melbourne number", "0151 234567 (mobile)".
_TRAILING_CUE: Final = re.compile(
    r"(?i)\s*(?:[-\u2013(:]\s*|(?:is|was)\s+)?(?:(?:my|our|his|her|their|the|a|an)\s+)?"
    r"(?:[\w-]+\s+){0,2}?(?:phone|mobile|cell|cellphone|number|landline|whatsapp|fax|tel|"
    r"telephone|hotline|handy|portable|celular)\b"
)
_POSSESSIVE_NUMBER: Final = re.compile(r"(?i)\b(?:my|your|his|her|our|their|the)\s+number\b")
_NOT_PHONE_CUE: Final = Cue.right_before(
    [
        "order", "orders", "invoice", "inv", "ticket", "tracking", "sku", "serial", "ref",
        "reference", "case", "po", "account", "acct", "id", "ids", "transaction", "txn", "build",
        "version", "ver", "isbn", "ean", "gtin", "upc", "part", "item", "batch", "lot",
        "confirmation", "booking", "policy", "claim", "routing", "aba", "swift", "bic", "iban",
        "vat", "tax", "ein", "tin", "passport", "license", "licence", "member", "membership",
        "student", "meeting", "room", "zip", "postcode", "pin", "code", "parcel", "shipment",
        "population", "amount", "total", "price", "balance", "commande", "facture", "bestellung",
        "bestellnummer", "rechnung", "auftrag", "sendung", "pedido", "fatura", "nota", "factura",
    ],
    tail=r"(?:\s*[a-z]{2})?",  # "commande n° FR 0047..."
)  # fmt: skip
_DATE: Final = re.compile(
    r"\d{1,4}([./\-])\d{1,2}\1\d{1,4}|\d{4}-\d{2}-\d{2}|\d{1,2}\.\d{1,2}\.\d{2,4}"
)
_NANP: Final = re.compile(r"(?:1[ .\-]?)?(?:\(\d{3}\)[ ]?|\d{3}[ .\-])\d{3}[ .\-]\d{4}")
_COUNTRY_DIGITS: Final = frozenset("123456789")
MIN_DIGITS: Final = 7
MAX_DIGITS: Final = 15


def _nanp_e164(digits: str) -> str | None:
    """North American numbering plan: NXX area code (no N11, no N9X) and NXX exchange."""
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


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


class PhoneRecognizer:
    name = "phone"

    def __init__(self, default_region: str = "US") -> None:
        # Region of numbers written without a country code (their canonical E.164 form).
        self.default_region = default_region

    def find(self, text: str) -> list[Span]:
        spans: list[Span] = []
        if digit_count(text) < MIN_DIGITS:
            return spans
        for match in _CANDIDATE.finditer(text):
            span = self._judge(text, match)
            if span is not None:
                spans.append(span)
        return spans

    def _judge(self, text: str, match: re.Match[str]) -> Span | None:
        start = match.start()
        ext_start = match.start("ext") if match.group("ext") else match.end()
        number = text[start:ext_start]
        digits = _digits(number)
        if len(digits) < MIN_DIGITS:
            return None
        before = text[max(0, start - 48) : start]
        if _NOT_PHONE_CUE.found(before):
            return None
        cue = (
            _CUE.found(before)
            or _POSSESSIVE_NUMBER.search(before) is not None
            or _TRAILING_CUE.match(text, match.end()) is not None
        )
        double_zero = number.startswith("00") and number[2:3] in _COUNTRY_DIGITS
        if number[0] == "+" or (double_zero and cue):
            return self._international(text, match, number, fail_closed=True)
        if double_zero:  # 00 and a country code, no cue: only a valid number
            return self._international(text, match, number, fail_closed=False)
        if _DATE.fullmatch(number):
            return None
        if cue and len(digits) <= MAX_DIGITS:
            return Span(start, match.end(), PHONE, PRIORITY[PHONE], self._canonical(digits))
        if _NANP.fullmatch(number):
            canonical = _nanp_e164(digits)
            if canonical is not None:
                return Span(start, match.end(), PHONE, PRIORITY[PHONE], canonical)
        return None

    def _international(
        self, text: str, match: re.Match[str], number: str, *, fail_closed: bool
    ) -> Span | None:
        """Longest prefix of whole groups that is a valid number, else (fail_closed) up to
        15 digits."""
        start = match.start()
        e164 = "+" + number[2:] if number.startswith("00") else number
        offset = len(number) - len(e164)
        cut = len(e164)
        while cut > 0:
            prefix = e164[:cut].rstrip(" .-/")
            if len(_digits(prefix)) < MIN_DIGITS:
                break
            canonical = self._validate(prefix)
            if canonical is not None:
                whole = prefix == e164.rstrip(" .-/")
                end = match.end() if whole else start + offset + len(prefix)
                return Span(start, end, PHONE, PRIORITY[PHONE], canonical)
            cut = max(prefix.rfind(" "), prefix.rfind("-"), prefix.rfind("."), 0)
        if not fail_closed:
            return None
        end, count = start, 0
        for index, char in enumerate(number):
            if char.isdigit():
                count += 1
                if count > MAX_DIGITS:
                    break
                end = start + index + 1
        if end - start == len(number):
            end = match.end()  # keep the extension with it
        return Span(start, end, PHONE, PRIORITY[PHONE], "+" + _digits(text[start:end])[:MAX_DIGITS])

    def _canonical(self, digits: str) -> str:
        """E.164 when the digits read as a valid number of the default region, else digits."""
        if self.default_region in ("US", "CA"):
            return _nanp_e164(digits) or digits
        return self._validate(digits, self.default_region) or digits

    @staticmethod
    def _validate(candidate: str, region: str | None = None) -> str | None:
        try:
            parsed = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(parsed):
            return None
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
