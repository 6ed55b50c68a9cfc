"""CRC-64-AVRO (Rabin) fingerprints, as the Avro spec defines them for single-object encoding."""

from __future__ import annotations

import json
from typing import Any, Final

from fastavro.schema import to_parsing_canonical_form

_EMPTY: Final = 0xC15D213AA4D7A795


def _table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_TABLE: Final = _table()


def crc64_avro(data: bytes) -> int:
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


def schema_fingerprint(parsed_schema: Any) -> bytes:
    """8-byte little-endian fingerprint of the schema's Parsing Canonical Form."""
    canonical = to_parsing_canonical_form(parsed_schema)
    return crc64_avro(canonical.encode()).to_bytes(8, "little")


def canonical_json(parsed_schema: Any) -> str:
    return json.dumps(json.loads(to_parsing_canonical_form(parsed_schema)), sort_keys=True)
