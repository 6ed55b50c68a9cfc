"""Ask a Kafka broker for cluster metadata using only the standard library.

Usage: python3 ops/kafka/probe.py HOST PORT [TIMEOUT_S]
           [--cafile CA.pem --user NAME --password-file FILE]

Sends ApiVersions (v0) and then a Metadata request (v12, all topics) and prints the brokers the
cluster reports. With ``--cafile`` it talks TLS (certificate and host name verified against that
CA) and logs in with SASL SCRAM-SHA-512 first (the secure stack's listener). Exit 0 when the
broker answered with at least one broker, 1 otherwise. Used by ops/kafka.sh to decide that the
broker is up; it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import secrets
import socket
import ssl
import struct
import sys

API_METADATA = 3
API_SASL_HANDSHAKE = 17
API_SASL_AUTHENTICATE = 36
API_VERSIONS = 18
SCRAM = "SCRAM-SHA-512"
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


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def _sasl_request(sock: socket.socket, correlation: int, api: int, body: bytes) -> _Reader:
    version = 1 if api == API_SASL_HANDSHAKE else 0
    header = struct.pack(">hhih", api, version, correlation, len(CLIENT_ID)) + CLIENT_ID
    reader = _Reader(_roundtrip(sock, header + body))
    if reader.take(">i") != correlation:
        raise ProbeError("SASL: wrong correlation id")
    return reader


def _authenticate(sock: socket.socket, correlation: int, message: bytes) -> bytes:
    reader = _sasl_request(
        sock, correlation, API_SASL_AUTHENTICATE, struct.pack(">i", len(message)) + message
    )
    error = reader.take(">h")
    length = reader.take(">h")
    message = reader.data[reader.pos : reader.pos + max(length, 0)].decode()
    reader.pos += max(length, 0)
    if error:
        raise ProbeError(f"SASL authentication failed (error {error}): {message}")
    size = reader.take(">i")
    return reader.data[reader.pos : reader.pos + size]


def _scram_login(sock: socket.socket, user: str, password: str) -> None:
    """SASL SCRAM-SHA-512 (RFC 5802): handshake, client-first, client-final; checks the
    server's signature too."""
    reader = _sasl_request(sock, 3, API_SASL_HANDSHAKE, _string(SCRAM))
    if error := reader.take(">h"):
        raise ProbeError(f"SaslHandshake: error code {error} ({SCRAM} not enabled?)")
    nonce = base64.b64encode(secrets.token_bytes(24)).decode()
    first_bare = f"n={user},r={nonce}"
    server_first = _authenticate(sock, 4, f"n,,{first_bare}".encode()).decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    if not fields["r"].startswith(nonce):
        raise ProbeError("SCRAM: server nonce does not extend ours")
    salted = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.digest(salted, b"Client Key", "sha512")
    final_bare = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{final_bare}".encode()
    signature = hmac.digest(hashlib.sha512(client_key).digest(), auth_message, "sha512")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = f"{final_bare},p={base64.b64encode(proof).decode()}".encode()
    server_final = _authenticate(sock, 5, final).decode()
    server_key = hmac.digest(salted, b"Server Key", "sha512")
    expected = base64.b64encode(hmac.digest(server_key, auth_message, "sha512")).decode()
    if server_final != f"v={expected}":
        raise ProbeError("SCRAM: the server's signature does not match")


def probe(
    host: str,
    port: int,
    timeout_s: float,
    tls: ssl.SSLContext | None = None,
    login: tuple[str, str] | None = None,
) -> list[tuple[int, str, int]]:
    with socket.create_connection((host, port), timeout=timeout_s) as raw:
        sock = tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw
        _check_api_versions(sock)
        if login is not None:
            _scram_login(sock, *login)
        return _metadata(sock)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("timeout_s", type=float, nargs="?", default=5.0)
    parser.add_argument("--cafile", help="talk TLS, trusting this CA")
    parser.add_argument("--user", help="SASL SCRAM-SHA-512 user")
    parser.add_argument("--password-file", help="file holding the user's password")
    args = parser.parse_args(argv[1:])
    host, port = args.host, args.port
    try:
        tls = ssl.create_default_context(cafile=args.cafile) if args.cafile else None
        login = None
        if args.user:
            with open(args.password_file, encoding="utf-8") as f:
                login = (args.user, f.read().strip())
        brokers = probe(host, port, args.timeout_s, tls, login)
    except (OSError, ProbeError, struct.error, IndexError, KeyError, ValueError) as exc:
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
