"""Certificates for the failure tests (cryptography), and TLS servers that present them."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DAY = datetime.timedelta(days=1)


@dataclass
class Issued:
    cert: Path
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    issued = Issued(directory / f"{stem}.pem", directory / f"{stem}.key")
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    issued.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    issued.key.chmod(0o600)
    return issued


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, *, expired: bool
) -> x509.CertificateBuilder:
    """``subject``'s certificate valid for days to come, or (``expired``) until yesterday."""
    now = datetime.datetime.now(datetime.UTC)
    start, end = (now - 10 * DAY, now - DAY) if expired else (now - DAY, now + 5 * DAY)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )


def new_ca(directory: Path, *, expired: bool = False) -> Issued:
    """A self-signed CA unknown to everyone (``expired``: its validity ended yesterday)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("flywheel test CA")
    cert = (
        _builder(name, name, key, expired=expired)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return _write(directory, "ca", cert, key)


def server_cert(directory: Path, ca: Issued, *, expired: bool = False) -> Issued:
    """A certificate for localhost / 127.0.0.1 issued by ``ca`` (``expired``: yesterday)."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(_name("localhost"), ca_cert.subject, key, expired=expired)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]  # EC key
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _write(directory, "server-expired" if expired else "server", cert, key)


@contextlib.asynccontextmanager
async def tls_server(issued: Issued, *, postgres: bool = False) -> AsyncIterator[str]:
    """A server on 127.0.0.1 that presents ``issued`` in a TLS handshake and nothing else;
    ``postgres``: first answers PostgreSQL's SSLRequest with 'S', as a TLS-enabled server
    does. Yields "127.0.0.1:PORT"."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert, issued.key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # the client hangs up after its failed check; the server's close cancels the rest
        with contextlib.suppress(
            OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.CancelledError
        ):
            if postgres:
                await reader.readexactly(8)  # SSLRequest: length 8, code 80877103
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(context)
            await reader.read(1)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=None if postgres else context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()
