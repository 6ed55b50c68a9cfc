"""Credit-card numbers (Luhn, or a card cue), IBANs (ISO 13616 mod 97, or a cue) and US SSNs."""

from __future__ import annotations

import re
from typing import Final

from dspy_flywheel.privacy.spans import CREDIT_CARD, IBAN, PRIORITY, SSN, Span
from dspy_flywheel.privacy.validators import (
    IBAN_LENGTHS,
    Cue,
    digit_count,
    iban_valid,
    luhn_valid,
    ssn_valid,
)

# Patterns start with a character class so the scan skips ahead; the lookbehind that
# follows checks the character before the first one (2-char window).
_CARD: Final = re.compile(r"\d(?<![\w\-.]\d)(?:[ \-]?\d){11,18}(?![\w]|[\-.]\d)")
_CARD_CUE: Final = Cue.in_clause(
    [
        "card", "cards", "credit", "debit", "visa", "mastercard", "amex", "discover", "maestro",
        "jcb", "unionpay", "diners", "rupay", "kreditkarte", "karte", "carte", "tarjeta", "cartão",
        "cartao", "carta", "cc", "cc#", "cvv", "expiry", "exp", "master card", "american express",
        "union pay", "carte bancaire",
    ]
)  # fmt: skip
_NOT_CARD_CUE: Final = Cue.right_before(
    [
        "order", "orders", "tracking", "invoice", "inv", "sku", "ean", "gtin", "upc", "isbn", "ref",
        "reference", "ticket", "case", "parcel", "shipment", "serial", "imei", "part", "item",
        "lot", "batch", "confirmation", "booking", "transaction", "txn", "timestamp", "ts", "id",
    ]
)  # fmt: skip
_CODE_HEAD: Final = re.compile(r"[A-Za-z]{2}\d{2} $")  # the tail of "DE89 3704 0044 ..."


class CreditCardRecognizer:
    """13-19 digits in groups of 2-8 (one kind of separator, space or dash, or none).

    A card when Luhn-valid, whatever its first digits, unless an order / tracking / EAN
    cue stands right before it; a card-shaped number that fails Luhn counts only after a
    card cue in the same clause ("my credit card ...").
    """

    name = "credit_card"

    def find(self, text: str) -> list[Span]:
        spans: list[Span] = []
        if digit_count(text) < 13:
            return spans
        for match in _CARD.finditer(text):
            before = text[max(0, match.start() - 48) : match.start()]
            if _NOT_CARD_CUE.found(before) or _CODE_HEAD.search(before):
                continue
            cue = _CARD_CUE.found(before)
            found = self._longest_card(match.group(), cue)
            if found is not None:
                length, digits = found
                start = match.start()
                spans.append(
                    Span(start, start + length, CREDIT_CARD, PRIORITY[CREDIT_CARD], digits)
                )
        return spans

    @staticmethod
    def _longest_card(candidate: str, cue: bool) -> tuple[int, str] | None:
        """The candidate, or its longest prefix of whole groups, that is a card number."""
        separators = {c for c in candidate if not c.isdigit()}
        if len(separators) > 1:
            return None
        if not separators:
            ok = 13 <= len(candidate) <= 19 and (cue or luhn_valid(candidate))
            return (len(candidate), candidate) if ok else None
        groups = candidate.split(separators.pop())
        prefixes = [groups[:count] for count in range(len(groups), 1, -1)]
        for kept in prefixes:  # the longest Luhn-valid prefix first
            digits = "".join(kept)
            groups_ok = all(2 <= len(g) <= 8 for g in kept)
            if 13 <= len(digits) <= 19 and groups_ok and luhn_valid(digits):
                return len(digits) + len(kept) - 1, digits
        for kept in prefixes if cue else ():  # then a 4-4-4-4(-n) number after a card cue
            digits = "".join(kept)
            if 13 <= len(digits) <= 19 and all(len(g) == 4 for g in kept[:-1]):
                return len(digits) + len(kept) - 1, digits
        return None


# The check digits after two letters (digits are rarer than letters: a faster scan).
_IBAN_CHECK_DIGITS: Final = re.compile(r"\d(?<=[A-Za-z]{2}\d)\d(?= ?[A-Za-z0-9])")
_IBAN_CUE: Final = Cue.in_clause(
    [
        "iban", "account", "acct", "konto", "kontonummer", "rekening", "conta", "cuenta", "compte",
        "conto", "bank", "wire", "transfer", "überweisung", "virement", "transferencia", "refund",
        "pay", "paid", "send", "remit",
    ]
)  # fmt: skip


class IbanRecognizer:
    """Country code, check digits, BBAN of the country's length (spaces every 4 allowed).

    Valid by ISO 13616 mod 97; after an account / IBAN / transfer cue a value of the
    right shape counts even with a wrong check (a typo is still someone's account).
    Each IBAN ends where its country's length ends, so a second one in the same sentence
    ("DE89... or GB82...") is found too.
    """

    name = "iban"

    def find(self, text: str) -> list[Span]:
        spans: list[Span] = []
        if digit_count(text) < 8:
            return spans
        taken = 0
        for match in _IBAN_CHECK_DIGITS.finditer(text):
            start = match.start() - 2
            if start < taken or (
                start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_")
            ):
                continue
            expected = IBAN_LENGTHS.get(text[start : start + 2].upper())
            end = _take_alnum(text, start, expected) if expected else None
            if end is None:
                continue
            compact = text[start:end].replace(" ", "").upper()
            if not iban_valid(compact) and not (
                _IBAN_CUE.found(text[max(0, start - 48) : start])
                and compact.isalnum()
                and compact[2:4].isdigit()
            ):
                continue
            spans.append(Span(start, end, IBAN, PRIORITY[IBAN], compact))
            taken = end
        return spans


def _take_alnum(text: str, start: int, count: int) -> int | None:
    """End of exactly `count` letters/digits from start (single spaces between them
    allowed), followed by a boundary; None if the run is shorter or goes on."""
    seen, index, limit = 0, start, len(text)
    while index < limit and seen < count:
        char = text[index]
        if char.isascii() and char.isalnum():
            seen += 1
        elif not (char == " " and seen > 0 and index + 1 < limit and text[index + 1] != " "):
            return None
        index += 1
    return None if seen != count or (index < limit and text[index].isalnum()) else index


_SSN: Final = re.compile(r"(\d)(?<![\w\-]\d)(\d\d)([\- ]?)(\d{2})\3(\d{4})(?![\w]|-\d)")
_SSN_CUE: Final = re.compile(
    r"(?i)\b(?:ssn|ss#|social security(?: number| no\.?| #)?)"
    r"(?:\s+(?:is|was|number|no\.?))*\W{0,4}$"
)


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
                continue  # never issued: 000/666/9xx areas are example values
            if not separator and not _SSN_CUE.search(
                text[max(0, match.start() - 32) : match.start()]
            ):
                continue
            spans.append(
                Span(match.start(), match.end(), SSN, PRIORITY[SSN], area + group + serial)
            )
        return spans
