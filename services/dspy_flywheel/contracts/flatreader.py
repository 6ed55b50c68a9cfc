"""Decoding flat Avro records (strings, numbers, booleans and their ``["null", T]`` unions).

``fastavro.schemaless_reader`` spends most of its ~15 us per small record on per-call setup;
the loop below decodes an ExecutionRecorded in about half that. ``codec.decode`` uses it when
the writer schema is the current one (no resolution) and every field is one of these types;
any other schema goes to fastavro. Truncated or malformed bodies raise ``ValueError``
subclasses, ``IndexError`` or ``UnicodeDecodeError``; the codec turns them into
``CorruptPayload``.
"""

from __future__ import annotations

import struct
from typing import Any, Final

_STRING, _LONG, _DOUBLE, _FLOAT, _BOOLEAN, _BYTES = range(6)
_KINDS: Final = {
    "string": _STRING,
    "long": _LONG,
    "int": _LONG,
    "double": _DOUBLE,
    "float": _FLOAT,
    "boolean": _BOOLEAN,
    "bytes": _BYTES,
}
_double = struct.Struct("<d").unpack_from
_float = struct.Struct("<f").unpack_from

Field = tuple[str, int, bool]  # name, kind, nullable


class TrailingBytes(ValueError):
    pass


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    byte = data[pos]
    pos += 1
    n = byte & 0x7F
    shift = 7
    while byte & 0x80:
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


class FlatReader:
    def __init__(self, fields: tuple[Field, ...]) -> None:
        self.fields = fields

    def read(self, data: bytes, pos: int) -> dict[str, Any]:
        """The record starting at ``data[pos]``; it must end exactly at ``len(data)``."""
        out: dict[str, Any] = {}
        size = len(data)
        for name, kind, nullable in self.fields:
            if nullable:
                branch = data[pos]
                pos += 1
                if branch == 0:
                    out[name] = None
                    continue
                if branch != 2:
                    raise ValueError(f"{name}: union branch {branch >> 1} does not exist")
            if kind in (_STRING, _BYTES):
                length, pos = _read_long(data, pos)
                end = pos + length
                if length < 0 or end > size:
                    raise ValueError(f"{name}: length {length} runs past the body")
                chunk = data[pos:end]
                out[name] = chunk.decode() if kind == _STRING else chunk
                pos = end
            elif kind == _LONG:
                out[name], pos = _read_long(data, pos)
            elif kind == _DOUBLE:
                out[name] = _double(data, pos)[0]
                pos += 8
            elif kind == _BOOLEAN:
                flag = data[pos]
                if flag > 1:
                    raise ValueError(f"{name}: boolean byte {flag}")
                out[name] = flag == 1
                pos += 1
            else:
                out[name] = _float(data, pos)[0]
                pos += 4
        if pos != size:
            raise TrailingBytes(f"{size - pos} trailing bytes after the record")
        return out


def compile_reader(schema: dict[str, Any]) -> FlatReader | None:
    """A reader for ``schema`` when it is a record of flat fields, else None."""
    if schema.get("type") != "record":
        return None
    fields: list[Field] = []
    for f in schema.get("fields", []):
        kind_name, nullable = f["type"], False
        if isinstance(kind_name, list):
            if len(kind_name) != 2 or kind_name[0] != "null":
                return None
            kind_name, nullable = kind_name[1], True
        kind = _KINDS.get(kind_name) if isinstance(kind_name, str) else None
        if kind is None:
            return None
        fields.append((f["name"], kind, nullable))
    return FlatReader(tuple(fields))
