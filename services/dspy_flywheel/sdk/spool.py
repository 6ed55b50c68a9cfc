"""On-disk spool: encoded events waiting for the broker, in order, surviving a process restart.

Layout of the spool directory::

    000001000000000000.seg   append-only segments, read in ascending sequence order
    cursor                   "<seq> <offset>" lines: how far each segment has been delivered

Each record is ``<u32 length><u32 crc32>`` + the payload (topic, key, value, headers)
sealed with AES-256-GCM (:mod:`dspy_flywheel.sdk.spool_crypto`: key id, nonce, ciphertext,
tag): the events' inputs and outputs are never on disk in clear. The directory is 0700 and
every file in it 0600. A torn tail (crash mid-write) fails its CRC and is cut off when the
spool is opened; a record that does not authenticate (another key, tampering) is skipped and
logged. Delivered segments are deleted; ``commit`` moves the cursor only after the broker
acknowledged. ``prepend`` writes a segment *before* the head, for events that were in flight
when the broker went away, so the replay order stays the call order. Thread-safe: one lock
around file state; ``sync`` fsyncs a
duplicate descriptor outside the lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dspy_flywheel.sdk.spool_crypto import SpoolSealer, open_owner_only, owner_only_dir
from dspy_flywheel.security.crypto import CryptoError

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<II")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_FIRST_SEQ = 1_000_000_000_000
_SUFFIX = ".seg"


@dataclass(frozen=True, slots=True)
class Message:
    """One encoded event as it goes to Kafka."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    event_id: str


@dataclass(frozen=True, slots=True)
class Position:
    seq: int
    offset: int


def encode(message: Message) -> bytes:
    """The record's payload before sealing."""
    parts = [_U16.pack(len(t := message.topic.encode())), t]
    if message.key is None:
        parts.append(_I32.pack(-1))
    else:
        parts += [_I32.pack(len(message.key)), message.key]
    parts += [_U32.pack(len(message.value)), message.value, _U16.pack(len(message.headers))]
    for name, value in message.headers:
        raw = name.encode()
        parts += [_U16.pack(len(raw)), raw, _U32.pack(len(value)), value]
    return b"".join(parts)


def frame(data: bytes) -> bytes:
    return _FRAME.pack(len(data), zlib.crc32(data)) + data


def decode(payload: bytes) -> Message:
    view = memoryview(payload)
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        chunk = bytes(view[pos : pos + n])
        pos += n
        return chunk

    topic = take(_U16.unpack(take(2))[0]).decode()
    key_len = _I32.unpack(take(4))[0]
    key = None if key_len < 0 else take(key_len)
    value = take(_U32.unpack(take(4))[0])
    headers = []
    for _ in range(_U16.unpack(take(2))[0]):
        name = take(_U16.unpack(take(2))[0]).decode()
        headers.append((name, take(_U32.unpack(take(4))[0])))
    event_id = dict(headers).get("event_id", b"").decode()
    return Message(topic, key, value, tuple(headers), event_id)


def _valid_prefix(data: bytes) -> tuple[int, int]:
    """(length, record count) of the frames at the start of ``data`` that are whole and pass
    their CRC."""
    pos = count = 0
    while pos + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + length
        if end > len(data) or zlib.crc32(data[pos + _FRAME.size : end]) != crc:
            break
        pos, count = end, count + 1
    return pos, count


def _append_file(path: Path) -> BinaryIO:
    return os.fdopen(open_owner_only(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), "ab")


class Spool:
    def __init__(
        self, directory: Path, *, max_bytes: int, segment_bytes: int, sealer: SpoolSealer
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._sealer = sealer
        self._lock = threading.Lock()
        owner_only_dir(directory)
        for path in directory.iterdir():  # files an older version wrote world-readable
            if path.is_file():
                os.chmod(path, 0o600)
        segments = sorted(int(p.name[: -len(_SUFFIX)]) for p in directory.glob(f"*{_SUFFIX}"))
        self._sizes = {seq: self._repair(seq) for seq in segments}
        self._offsets = {s: o for s, o in self._read_cursor().items() if s in self._sizes}
        tail = max(self._sizes, default=_FIRST_SEQ)
        self._active_seq = tail
        self._active: BinaryIO = _append_file(self._path(tail))  # closed in close()
        self._sizes.setdefault(tail, 0)
        self._dirty = False
        self._pending_records = self._count_pending()
        self.unreadable = 0  # records skipped because they did not authenticate

    # -- writing ------------------------------------------------------------------------------

    def append(self, messages: Iterable[Message]) -> tuple[int, int]:
        """Append in order; returns (written, refused for lack of space)."""
        written = refused = 0
        with self._lock:
            pending = self._pending_bytes_locked()
            for message in messages:
                record = frame(self._sealer.seal(encode(message)))
                if pending + len(record) > self.max_bytes:
                    refused += 1
                    continue
                if self._sizes[self._active_seq] >= self.segment_bytes:
                    self._roll_locked()
                self._active.write(record)
                self._sizes[self._active_seq] += len(record)
                pending += len(record)
                written += 1
            if written:
                self._active.flush()  # to the OS: survives a process crash; fsync in sync()
                self._dirty = True
                self._pending_records += written
        return written, refused

    def prepend(self, messages: Sequence[Message]) -> None:
        """Write ``messages`` so they are read before everything already spooled (no limit)."""
        if not messages:
            return
        data = b"".join(frame(self._sealer.seal(encode(m))) for m in messages)
        with self._lock:
            seq = min(self._sizes) - 1
            path = self._path(seq)
            with os.fdopen(open_owner_only(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            self._sizes[seq] = len(data)
            self._pending_records += len(messages)

    def sync(self) -> None:
        """fsync what was appended since the last sync."""
        with self._lock:
            if not self._dirty:
                return
            self._dirty = False
            fd = os.dup(self._active.fileno())
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- reading ------------------------------------------------------------------------------

    def read(
        self, max_records: int, max_bytes: int = 4 * 1024 * 1024
    ) -> list[tuple[Message, Position]]:
        """The next undelivered messages in order, each with the position just after it."""
        out: list[tuple[Message, Position]] = []
        size = 0
        with self._lock:
            for seq in sorted(self._sizes):
                start = self._offsets.get(seq, 0)
                end = self._sizes[seq]
                if start >= end:
                    continue
                with open(self._path(seq), "rb") as f:
                    f.seek(start)
                    data = f.read(end - start)
                pos = 0
                while pos < len(data):
                    if len(out) >= max_records or size >= max_bytes:
                        return out
                    length, crc = _FRAME.unpack_from(data, pos)
                    payload = data[pos + _FRAME.size : pos + _FRAME.size + length]
                    if len(payload) != length or zlib.crc32(payload) != crc:
                        raise OSError(f"spool segment {seq} corrupt at offset {start + pos}")
                    pos += _FRAME.size + length
                    size += length
                    try:
                        message = decode(self._sealer.open(payload))
                    except CryptoError as exc:  # another key or tampering: cannot be sent
                        log.error("spool %s: skipping a record at %d: %s", seq, start + pos, exc)
                        self.unreadable += 1
                        continue
                    out.append((message, Position(seq, start + pos)))
            if not out and self._pending_records:
                log.warning(
                    "spool %s: nothing readable but %d counted; resetting",
                    self.directory,
                    self._pending_records,
                )
                self._pending_records = 0
                self._reset_locked()
        return out

    def commit(self, position: Position, records: int) -> None:
        """``records`` messages up to ``position`` were delivered: move the cursor, drop
        segments read past."""
        with self._lock:
            for seq in sorted(self._sizes):
                if seq >= position.seq:
                    break
                self._delete_locked(seq)  # read before position's segment: fully delivered
            self._pending_records = max(0, self._pending_records - records)
            self._offsets[position.seq] = position.offset
            if self._pending_records == 0:
                self._reset_locked()
            self._write_cursor_locked()

    # -- state --------------------------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        """Appended since the last fsync."""
        return self._dirty

    def has_pending(self) -> bool:
        return self._pending_records > 0

    @property
    def pending_records(self) -> int:
        return self._pending_records

    def pending_bytes(self) -> int:
        with self._lock:
            return self._pending_bytes_locked()

    def close(self) -> None:
        self.sync()
        with self._lock:
            self._active.close()
            self._write_cursor_locked()

    # -- internals ----------------------------------------------------------------------------

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:020d}{_SUFFIX}"

    def _pending_bytes_locked(self) -> int:
        return sum(self._sizes.values()) - sum(self._offsets.values())

    def _roll_locked(self) -> None:
        self._active.flush()
        os.fsync(self._active.fileno())
        self._active.close()
        self._active_seq = max(self._sizes) + 1
        self._active = _append_file(self._path(self._active_seq))
        self._sizes[self._active_seq] = 0

    def _reset_locked(self) -> None:
        """Everything delivered: remove all segments and start an empty one."""
        self._active.close()
        next_seq = max(self._sizes) + 1
        for seq in list(self._sizes):
            self._delete_locked(seq)
        self._active_seq = next_seq
        self._active = _append_file(self._path(next_seq))
        self._sizes[next_seq] = 0
        self._offsets.clear()
        self._dirty = False

    def _delete_locked(self, seq: int) -> None:
        self._sizes.pop(seq, None)
        self._offsets.pop(seq, None)
        with contextlib.suppress(FileNotFoundError):
            self._path(seq).unlink()

    def _repair(self, seq: int) -> int:
        """Length of the valid prefix of a segment; a torn tail is cut off."""
        path = self._path(seq)
        data = path.read_bytes()
        pos, _ = _valid_prefix(data)
        if pos != len(data):
            log.warning("spool %s: cutting a torn tail of %d bytes", path, len(data) - pos)
            with open(path, "r+b") as f:
                f.truncate(pos)
        return pos

    def _count_pending(self) -> int:
        """Records after the cursor (segments already repaired: every frame is whole)."""
        count = 0
        with self._lock:
            for seq, size in self._sizes.items():
                with open(self._path(seq), "rb") as f:
                    f.seek(self._offsets.get(seq, 0))
                    count += _valid_prefix(f.read(max(0, size - f.tell())))[1]
        return count

    def _read_cursor(self) -> dict[int, int]:
        offsets: dict[int, int] = {}
        try:
            for line in (self.directory / "cursor").read_text().splitlines():
                seq, offset = line.split()
                offsets[int(seq)] = int(offset)
        except FileNotFoundError:
            pass
        except ValueError:
            log.warning("spool %s: unreadable cursor; replaying from the start", self.directory)
            return {}
        return offsets

    def _write_cursor_locked(self) -> None:
        tmp = self.directory / "cursor.tmp"
        text = "".join(f"{s} {o}\n" for s, o in sorted(self._offsets.items()) if o)
        with os.fdopen(open_owner_only(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "w") as f:
            f.write(text)
        os.replace(tmp, self.directory / "cursor")
