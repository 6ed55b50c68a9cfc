"""Start-up check of the Kafka settings: one connection, made the way every client makes it.

``check_kafka`` connects to the bootstrap servers with ``KafkaSettings.client_kwargs()`` (TLS
handshake, SASL login) and asks for metadata. A fault no retry can fix raises
``ConnectionSetupError`` naming the setting: a wrong user or password, an unknown CA, an expired
or mismatched certificate, a plaintext client at a TLS listener (or the reverse), TLS without
the SASL login the listener wants, a SASL mechanism the broker does not offer. When no server
accepts a TCP connection at all it returns quietly: an outage is for the caller's own retry.
Each step is bounded by ``timeout_s``; nothing here retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Protocol

from aiokafka.conn import AIOKafkaConnection, create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.admin import SaslHandShakeRequest
from aiokafka.protocol.metadata import MetadataRequest

from dspy_flywheel.security.errors import ConnectionSetupError
from dspy_flywheel.security.tls import Endpoint, explain_tls_failure, tls_probe
from dspy_flywheel.settings import KafkaSettings

log = logging.getLogger(__name__)
CHECK_TIMEOUT_S = 15.0
DEFAULT_PORT = 9092
_SERVERS = "KAFKA_BOOTSTRAP_SERVERS"
_PROTOCOL = "KAFKA_SECURITY_PROTOCOL"


async def check_kafka(kafka: KafkaSettings, timeout_s: float = CHECK_TIMEOUT_S) -> None:
    """Raise ``ConnectionSetupError`` when ``kafka`` cannot work (see the module docstring)."""
    for host, port in _servers(kafka.bootstrap_servers):
        conn = None
        try:
            conn = await asyncio.wait_for(_connect(kafka, host, port, timeout_s), timeout_s)
            await asyncio.wait_for(conn.send(MetadataRequest([])), timeout_s)
        except Exception as exc:
            await _raise_if_setup_fault(exc, kafka, host, port, timeout_s)
            log.debug("Kafka check: %s:%s (connected: %s): %s", host, port, conn is not None, exc)
        finally:
            if conn is not None:
                conn.close()
        if conn is not None:
            return  # one server answered; an unreachable one: try the next


class _Startable(Protocol):
    async def start(self) -> None: ...


async def start_client(client: _Startable, kafka: KafkaSettings) -> None:
    """``await client.start()`` for an aiokafka producer, consumer or admin client; when it
    fails because of a setting, raise the ``ConnectionSetupError`` naming it instead of
    aiokafka's "Unable to bootstrap" (the cause is kept as ``__cause__``)."""
    try:
        await client.start()
    except KafkaError as exc:
        try:
            await check_kafka(kafka)
        except ConnectionSetupError as setup:
            raise setup from exc
        raise


def _servers(bootstrap: str) -> list[tuple[str, int]]:
    """``host[:port]`` items, as aiokafka reads them (no port: 9092)."""
    servers = []
    for item in filter(None, (part.strip() for part in bootstrap.split(","))):
        host, sep, port = item.rpartition(":")
        if not sep or "]" in port:  # no port (an IPv6 literal has colons inside brackets)
            host, port = item, str(DEFAULT_PORT)
        if not port.isdigit():
            raise ConnectionSetupError(
                _SERVERS, f"{_SERVERS}: {item!r} is not host:port (e.g. broker-1.example:9093)"
            )
        servers.append((host.strip("[]"), int(port)))
    if not servers:
        raise ConnectionSetupError(_SERVERS, f"{_SERVERS} is empty")
    return servers


async def _connect(
    kafka: KafkaSettings, host: str, port: int, timeout_s: float
) -> AIOKafkaConnection:
    kw = kafka.client_kwargs()
    del kw["bootstrap_servers"]
    return await create_conn(host, port, request_timeout_ms=int(timeout_s * 1000), **kw)


async def _raise_if_setup_fault(
    exc: BaseException, kafka: KafkaSettings, host: str, port: int, timeout_s: float
) -> None:
    address = f"{host}:{port}"
    endpoint = Endpoint(address, _SERVERS)
    hung_up = kafka.uses_tls and _hung_up_in_handshake(exc)
    if hung_up and await tls_probe(host, port, timeout_s) == "plain":
        raise ConnectionSetupError(
            _PROTOCOL,
            f"{address} ({_SERVERS}) does not speak TLS, but "
            f"{_PROTOCOL}={kafka.security_protocol} does: set {_PROTOCOL}=PLAINTEXT or "
            f"SASL_PLAINTEXT, or point {_SERVERS} at the TLS listener",
        ) from exc
    if setup := explain_tls_failure(exc, endpoint, kafka.tls_files, _PROTOCOL):
        raise setup from exc
    if isinstance(exc, SaslAuthenticationFailed):
        raise ConnectionSetupError(
            "KAFKA_SASL_PASSWORD",
            f"{address} refused the login of KAFKA_SASL_USERNAME={kafka.sasl_username} with "
            f"{kafka.sasl_mechanism or 'PLAIN'} ({exc}): check KAFKA_SASL_USERNAME and "
            "KAFKA_SASL_PASSWORD / KAFKA_SASL_PASSWORD_FILE (and that the user has "
            "credentials for KAFKA_SASL_MECHANISM)",
        ) from exc
    if isinstance(exc, UnsupportedSaslMechanismError):
        raise ConnectionSetupError(
            "KAFKA_SASL_MECHANISM",
            f"{address} does not offer KAFKA_SASL_MECHANISM={kafka.sasl_mechanism or 'PLAIN'}; "
            "set it to a mechanism the listener enables (e.g. SCRAM-SHA-512)",
        ) from exc
    if isinstance(exc, KafkaConnectionError) and "closed" in str(exc):
        await _explain_closed(exc, kafka, host, port, timeout_s)


def _hung_up_in_handshake(exc: BaseException) -> bool:
    """A TLS client's connection ended without a verdict on the certificate (a plaintext
    listener resets or answers garbage)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False
    return isinstance(exc, (ssl.SSLError, ConnectionResetError, ConnectionAbortedError)) or (
        isinstance(exc, KafkaConnectionError) and "closed" in str(exc)
    )


async def _explain_closed(
    exc: BaseException, kafka: KafkaSettings, host: str, port: int, timeout_s: float
) -> None:
    """The broker hung up on us: a protocol mismatch, found out by asking the port."""
    address = f"{host}:{port}"
    if not kafka.uses_tls and await tls_probe(host, port, timeout_s) == "tls":
        raise ConnectionSetupError(
            _PROTOCOL,
            f"{address} ({_SERVERS}) is a TLS listener and closed the plaintext connection of "
            f"{_PROTOCOL}={kafka.security_protocol}: set {_PROTOCOL}=SASL_SSL (or SSL) and "
            "KAFKA_SSL_CAFILE",
        ) from exc
    if kafka.uses_tls and not kafka.uses_sasl and await _wants_sasl(kafka, host, port, timeout_s):
        raise ConnectionSetupError(
            _PROTOCOL,
            f"{address} ({_SERVERS}) wants a SASL login and closed the connection of "
            f"{_PROTOCOL}=SSL: set {_PROTOCOL}=SASL_SSL with KAFKA_SASL_MECHANISM, "
            "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD(_FILE)",
        ) from exc


async def _wants_sasl(kafka: KafkaSettings, host: str, port: int, timeout_s: float) -> bool:
    """Whether the listener answers a SASL handshake (it is a SASL_SSL listener)."""
    try:
        conn = await asyncio.wait_for(_connect(kafka, host, port, timeout_s), timeout_s)
    except (KafkaError, OSError, TimeoutError):
        return False
    try:
        response = await asyncio.wait_for(conn.send(SaslHandShakeRequest("PLAIN")), timeout_s)
        return bool(getattr(response, "enabled_mechanisms", None))
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        with contextlib.suppress(Exception):
            conn.close()
