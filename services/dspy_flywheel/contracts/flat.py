"""Writing and reading flat Avro records (strings, numbers, booleans, bytes and their
``["null", T]`` unions) without fastavro's per-call setup.

``fastavro``'s schemaless writer and reader spend most of their ~15 us per small record on
setup; the loops below encode or decode an ExecutionRecorded in a fraction of that. Both are
compiled from a schema (fields in the schema's order, by name), so the wire layout comes from
the ``.avsc`` alone. ``codec`` uses them for every flat schema (all of today's); any other
schema goes to fastavro. ``tests/unit/test_flat_codec.py`` checks both against fastavro.

Writing reads the fields as attributes of an object (an event); a value of the wrong type or
out of range raises (``TypeError``, ``ValueError``, ``AttributeError``, ``struct.error``).
Reading a truncated or malformed body raises ``ValueError`` subclasses, ``IndexError`` or
``UnicodeDecodeError``. The codec turns these into its own errors.
"""

from __future__ import annotations

import keyword
import struct
from collections.abc import Callable
from typing import Any, Final

_STRING, _LONG, _INT, _DOUBLE, _FLOAT, _BOOLEAN, _BYTES = range(7)
_KINDS: Final = {
    "string": _STRING,
    "long": _LONG,
    "int": _INT,
    "double": _DOUBLE,
    "float": _FLOAT,
    "boolean": _BOOLEAN,
    "bytes": _BYTES,
}
_double = struct.Struct("<d")
_float = struct.Struct("<f")

Field = tuple[str, int, bool]  # name, kind, nullable


def flat_fields(schema: dict[str, Any]) -> tuple[Field, ...] | None:
    """The fields of ``schema`` when it is a record of flat fields, else None."""
    if schema.get("type") != "record":
        return None
    out: list[Field] = []
    for f in schema.get("fields", []):
        if not f["name"].isidentifier() or keyword.iskeyword(f["name"]):
            return None  # not a Python attribute name (Avro names always are, but check)
        kind_name, nullable = f["type"], False
        if isinstance(kind_name, list):
            if len(kind_name) != 2 or kind_name[0] != "null":
                return None
            kind_name, nullable = kind_name[1], True
        kind = _KINDS.get(kind_name) if isinstance(kind_name, str) else None
        if kind is None:
            return None
        out.append((f["name"], kind, nullable))
    return tuple(out)


# -- writing ----------------------------------------------------------------------------------

_SMALL = tuple(bytes((i,)) for i in range(0x80))  # zigzag varints of -64..63
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1


def _long(n: int) -> bytes:
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise ValueError(f"{n} does not fit a long")
    n = (n << 1) ^ (n >> 63)  # zigzag
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _int(n: int) -> bytes:
    if not _INT_MIN <= n <= _INT_MAX:
        raise ValueError(f"{n} does not fit an int")
    return _long(n)


def _bytes(raw: bytes) -> bytes:
    """``raw`` with its length in front (most are under 64 bytes: one table lookup)."""
    if not isinstance(raw, bytes):
        raise TypeError(f"expected bytes, got {type(raw).__name__}")
    n = len(raw)
    return (_SMALL[n << 1] if n < 64 else _long(n)) + raw


def _boolean(flag: bool) -> bytes:
    if flag is True:
        return b"\x01"
    if flag is False:
        return b"\x00"
    raise TypeError(f"expected a bool, got {type(flag).__name__}")


Encoder = Callable[[Any], bytes]
# The kinds written by a call (strings and integers are written inline: see FlatWriter).
_ENCODERS: Final[dict[int, Encoder]] = {
    _DOUBLE: _double.pack,
    _FLOAT: _float.pack,
    _BOOLEAN: _boolean,
    _BYTES: _bytes,
}


class FlatWriter:
    """Writes the fields of an object as an Avro record body.

    ``write`` is generated from the schema (the way ``dataclasses`` makes ``__init__``): one
    step per field, in the schema's order, no loop; string lengths and small ints (-64..63, one
    byte) are written inline, without a call. ``source`` shows the generated function.
    """

    def __init__(self, fields: tuple[Field, ...]) -> None:
        self.names = tuple(name for name, _, _ in fields)
        namespace: dict[str, Any] = {"_S": _SMALL, "_long": _long, "_int": _int}
        lines, parts = [], []
        for i, (name, kind, nullable) in enumerate(fields):
            v = f"v{i}"
            lines.append(f"{v} = obj.{name}")
            if kind == _STRING:
                lines.append(
                    f"s{i} = b'' if {v} is None else {v}.encode()"
                    if nullable
                    else f"s{i} = {v}.encode()"
                )
                head = f"(_S[len(s{i}) << 1] if len(s{i}) < 64 else _long(len(s{i})))"
                tail = f"s{i}"
            elif kind in (_LONG, _INT):
                big = "_long" if kind == _LONG else "_int"
                head, tail = (
                    f"(_S[({v} << 1) ^ ({v} >> 63)] if -64 <= {v} < 64 else {big}({v}))",
                    "",
                )
            else:
                namespace[f"_w{i}"] = _ENCODERS[kind]
                head, tail = f"_w{i}({v})", ""
            if nullable:
                head = f'(b"\\x00" if {v} is None else b"\\x02" + {head})'
            parts += [head, tail] if tail else [head]
        body = "".join(f"    {line}\n" for line in lines)
        self.source = f"def write(obj):\n{body}    return b''.join(({', '.join(parts)},))\n"
        exec(self.source, namespace)  # field names are identifiers (checked in flat_fields)
        self.write: Callable[[Any], bytes] = namespace["write"]


def compile_writer(schema: dict[str, Any]) -> FlatWriter | None:
    """A writer for ``schema`` when it is a record of flat fields, else None."""
    fields = flat_fields(schema)
    return FlatWriter(fields) if fields is not None else None


# -- reading ----------------------------------------------------------------------------------


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
            elif kind in (_LONG, _INT):
                out[name], pos = _read_long(data, pos)
            elif kind == _DOUBLE:
                out[name] = _double.unpack_from(data, pos)[0]
                pos += 8
            elif kind == _BOOLEAN:
                flag = data[pos]
                if flag > 1:
                    raise ValueError(f"{name}: boolean byte {flag}")
                out[name] = flag == 1
                pos += 1
            else:
                out[name] = _float.unpack_from(data, pos)[0]
                pos += 4
        if pos != size:
            raise TrailingBytes(f"{size - pos} trailing bytes after the record")
        return out


def compile_reader(schema: dict[str, Any]) -> FlatReader | None:
    """A reader for ``schema`` when it is a record of flat fields, else None."""
    fields = flat_fields(schema)
    return FlatReader(fields) if fields is not None else None
