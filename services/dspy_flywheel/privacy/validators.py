"""Checksums and structural rules that separate real identifiers from look-alikes."""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache
from typing import Final

# ISO 13616 lengths of the countries that issue IBANs.
IBAN_LENGTHS: Final[dict[str, int]] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


@lru_cache(maxsize=16)
def digit_count(text: str) -> int:
    """ASCII digits in text: the prefilter of every digit-based recognizer.

    Cached because each of them asks about the same text in turn.
    """
    encoded = text.encode("utf-8", "surrogatepass")
    return len(encoded) - len(encoded.translate(None, b"0123456789"))


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) check over a string of ASCII digits."""
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def card_network_known(digits: str) -> bool:
    """True when the leading digits belong to a card network (Visa, Mastercard, Amex...)."""
    length = len(digits)
    first = digits[0]
    if first == "4":
        return length in (13, 16, 19)
    two, four = int(digits[:2]), int(digits[:4])
    if first == "5":  # Mastercard 51-55, Maestro 50/56-59
        return length == 16 if 51 <= two <= 55 else 12 <= length <= 19
    if first == "2":  # Mastercard 2221-2720, Mir 2200-2204
        return length == 16 and (2221 <= four <= 2720 or 2200 <= four <= 2204)
    if first == "3":
        if two in (34, 37):
            return length == 15
        if 3528 <= four <= 3589:  # JCB
            return 16 <= length <= 19
        return (300 <= int(digits[:3]) <= 305 or two in (36, 38, 39)) and 14 <= length <= 19
    if first == "6":  # Discover, UnionPay, Maestro, RuPay
        return 12 <= length <= 19
    return False


def iban_valid(compact: str) -> bool:
    """ISO 13616: known country, its length, and ``mod 97 == 1`` after moving 4 chars back."""
    iban = compact.upper()
    expected = IBAN_LENGTHS.get(iban[:2])
    if expected is None or len(iban) != expected or not iban[2:4].isdigit():
        return False
    if not iban.isalnum() or not iban.isascii():
        return False
    rearranged = iban[4:] + iban[:4]
    remainder = 0
    for char in rearranged:
        value = int(char, 36)  # '0'-'9' -> 0-9, 'A'-'Z' -> 10-35
        remainder = (remainder * (100 if value > 9 else 10) + value) % 97
    return remainder == 1


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """SSA rules: area not 000/666/9xx, group not 00, serial not 0000."""
    return (
        area != "000"
        and area != "666"
        and not area.startswith("9")
        and group != "00"
        and serial != "0000"
    )


def shannon_entropy(value: str) -> float:
    """Bits per character of the value's own character distribution."""
    if not value:
        return 0.0
    length = len(value)
    return -sum(n / length * math.log2(n / length) for n in Counter(value).values())
