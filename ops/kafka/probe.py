"""Ask a Kafka broker for cluster metadata using only the standard library.

Usage: python3 ops/kafka/probe.py HOST PORT [TIMEOUT_S]

Sends ApiVersions (v0) and then a Metadata request (v12, all topics) and prints the brokers the
cluster reports. Exit 0 when the broker answered with at least one broker, 1 otherwise. Used by
ops/kafka.sh to decide that the broker is up; it runs before any virtualenv exists.
"""

from __future__ import annotations

import socket
import struct
import sys

API_METADATA = 3
API_VERSIONS = 18
METADATA_VERSION = 12  # flexible encoding; supported by every Kafka 4.x broker
CLIENT_ID = b"flywheel-ops-probe"


class ProbeError(Exception):
    """The broker did not answer the way a healthy Kafka 4.x broker does."""


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def compact_string(self) -> str | None:
        length = self.uvarint() - 1
        if length < 0:
            return None
        text = self.data[self.pos : self.pos + length].decode()
        self.pos += length
        return text

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.pos += self.uvarint()


def _roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    return _recv_exact(sock, size)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ProbeError("connection closed by broker")
        chunks.extend(chunk)
    return bytes(chunks)


def _check_api_versions(sock: socket.socket) -> None:
    header = struct.pack(">hhih", API_VERSIONS, 0, 1, len(CLIENT_ID)) + CLIENT_ID
    reader = _Reader(_roundtrip(sock, header))
    if reader.take(">i") != 1:
        raise ProbeError("ApiVersions: wrong correlation id")
    error = reader.take(">h")
    if error:
        raise ProbeError(f"ApiVersions: error code {error}")
    for _ in range(reader.take(">i")):
        key, low, high = reader.take(">h"), reader.take(">h"), reader.take(">h")
        if key == API_METADATA:
            if not low <= METADATA_VERSION <= high:
                raise ProbeError(f"broker serves Metadata v{low}..v{high}, need v12")
            return
    raise ProbeError("broker does not list the Metadata API")


def _metadata(sock: socket.socket) -> list[tuple[int, str, int]]:
    header = struct.pack(">hhih", API_METADATA, METADATA_VERSION, 2, len(CLIENT_ID))
    header += CLIENT_ID + _uvarint(0)
    # topics=null (all), allow_auto_topic_creation=false, include_topic_authorized_ops=false
    body = _uvarint(0) + b"\x00\x00" + _uvarint(0)
    reader = _Reader(_roundtrip(sock, header + body))
    if reader.take(">i") != 2:
        raise ProbeError("Metadata: wrong correlation id")
    reader.skip_tags()
    reader.take(">i")  # throttle_time_ms
    brokers = []
    for _ in range(reader.uvarint() - 1):
        node_id = reader.take(">i")
        host = reader.compact_string() or ""
        port = reader.take(">i")
        reader.compact_string()  # rack
        reader.skip_tags()
        brokers.append((node_id, host, port))
    return brokers


def probe(host: str, port: int, timeout_s: float) -> list[tuple[int, str, int]]:
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        _check_api_versions(sock)
        return _metadata(sock)


def main(argv: list[str]) -> int:
    host, port = argv[1], int(argv[2])
    timeout_s = float(argv[3]) if len(argv) > 3 else 5.0
    try:
        brokers = probe(host, port, timeout_s)
    except (OSError, ProbeError, struct.error, IndexError) as exc:
        print(f"kafka at {host}:{port} not ready: {exc}", file=sys.stderr)
        return 1
    if not brokers:
        print(f"kafka at {host}:{port} answered with no brokers yet", file=sys.stderr)
        return 1
    for node_id, broker_host, broker_port in brokers:
        print(f"broker node {node_id} at {broker_host}:{broker_port}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
