"""IPv4 and IPv6 addresses, validated by :mod:`ipaddress`."""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from dspy_flywheel.privacy.spans import IPV4, IPV6, PRIORITY, Span

_IPV4: Final = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?![\w]|\.\d|-[A-Za-z])")
# Four dotted numbers after "version", "v", "build", "section", "§" are versions or numbering.
_VERSION_CUE: Final = re.compile(
    r"(?i)(?:\b(?:version|ver|release|build|firmware|fw|sdk|python|java|kernel|"
    r"section|sec|chapter|clause|step|rule|figure|fig|table|item|paragraph|oid)\.?"
    r"(?:\s+(?:string|number|no\.?|is|was|of))?\s*:?\s*"
    r"|§\s*"
    r"|\bv)$"
)
_IPV6: Final = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}+"
    r"(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?+(?:%[0-9A-Za-z]+)?(?![\w:]|\.\w)"
)


def _netmask(address: ipaddress.IPv4Address) -> bool:
    """255.255.255.0, 255.255.240.0...: a mask, nobody's address (255.255.255.255 is not)."""
    bits = int(address)
    return bits >> 24 == 0xFF and bits != 0xFFFFFFFF and (bits | (bits - 1)) == 0xFFFFFFFF


class IPv4Recognizer:
    name = "ipv4"

    def find(self, text: str) -> list[Span]:
        if text.count(".") < 3:
            return []
        spans = []
        for match in _IPV4.finditer(text):
            if _VERSION_CUE.search(text[max(0, match.start() - 24) : match.start()]):
                continue
            try:
                address = ipaddress.IPv4Address(match.group())
            except ValueError:  # octet > 255 or leading zero
                continue
            if _netmask(address):
                continue
            spans.append(Span(match.start(), match.end(), IPV4, PRIORITY[IPV4], str(address)))
        return spans


class IPv6Recognizer:
    """Full, ``::``-compressed, IPv4-embedded and zoned forms; needs at least one digit."""

    name = "ipv6"

    def find(self, text: str) -> list[Span]:
        if text.count(":") < 2:
            return []
        spans = []
        for match in _IPV6.finditer(text):
            candidate = match.group()
            if not any(c.isdigit() for c in candidate.split("%")[0]):
                continue  # "::", "dead::beef", C++ "a::b" look-alikes
            if candidate.endswith(":") and not candidate.endswith("::"):
                candidate = candidate[:-1]  # "fe80::1: failed" - the colon is punctuation
            try:
                address = ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            end = match.start() + len(candidate)
            spans.append(Span(match.start(), end, IPV6, PRIORITY[IPV6], address.compressed))
        return spans
