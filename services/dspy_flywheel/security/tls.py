"""TLS for the platform's Kafka and PostgreSQL clients: one way to build an SSLContext, and
plain words (naming the setting to fix) for a handshake that failed.

Certificate and host-name verification are on by default. Only an explicit setting turns them
off (``KAFKA_SSL_INSECURE_SKIP_VERIFY=true``; ``DATABASE_SSLMODE=require`` or ``verify-ca``), and
a context built that way logs a WARNING that names the setting (once per process and setting).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import ssl
from dataclasses import dataclass

from cryptography import x509

from dspy_flywheel.security.errors import ConnectionSetupError

log = logging.getLogger(__name__)

_warned: set[str] = set()

# OpenSSL verify codes (X509_V_ERR_*) that mean "not issued by a CA we trust".
_UNTRUSTED = {2, 18, 19, 20, 21, 27}
_NOT_YET_VALID, _EXPIRED, _HOSTNAME_MISMATCH, _IP_MISMATCH = 9, 10, 62, 64


@dataclass(frozen=True)
class TLSFiles:
    """A client's TLS material and the names of the settings that point at each file."""

    cafile: str | None
    certfile: str | None
    keyfile: str | None
    cafile_setting: str
    certfile_setting: str
    keyfile_setting: str


def warn_insecure(setting: str, what: str) -> None:
    """Log, once per process, that ``setting`` turned verification off."""
    if setting in _warned:
        return
    _warned.add(setting)
    log.warning(
        "INSECURE: %s: %s. Anyone on the network path can pose as the server and read the "
        "traffic, passwords included. Remove this setting to verify (the default).",
        setting,
        what,
    )


def client_context(
    files: TLSFiles, *, verify: bool, check_hostname: bool, insecure_setting: str
) -> ssl.SSLContext:
    """A client context trusting ``files.cafile`` (the system store when None), TLS >= 1.2,
    with the client certificate loaded when one is configured."""
    try:
        ctx = ssl.create_default_context(cafile=files.cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionSetupError(
            files.cafile_setting,
            f"{files.cafile_setting}={files.cafile}: cannot load CA certificates "
            f"({_os_reason(exc)}); point it at the PEM file of the CA that issued the server's "
            "certificate",
        ) from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if files.certfile or files.keyfile:
        if not files.certfile:
            raise ConnectionSetupError(
                files.certfile_setting,
                f"{files.keyfile_setting} is set but {files.certfile_setting} is not: "
                "a client key needs its certificate",
            )
        try:
            ctx.load_cert_chain(files.certfile, files.keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionSetupError(
                files.certfile_setting,
                f"{files.certfile_setting}={files.certfile} / {files.keyfile_setting}="
                f"{files.keyfile}: cannot load the client certificate and key "
                f"({_os_reason(exc)})",
            ) from None
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        warn_insecure(insecure_setting, "the server's certificate and host name are NOT verified")
    elif not check_hostname:
        ctx.check_hostname = False
        warn_insecure(
            insecure_setting, "the server's host name is NOT checked against its certificate"
        )
    return ctx


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class Endpoint:
    """The server a client talks to, and the setting that names it (for messages)."""

    address: str
    setting: str


def explain_tls_failure(
    exc: BaseException, endpoint: Endpoint, files: TLSFiles, protocol_setting: str
) -> ConnectionSetupError | None:
    """The setting to fix when ``exc`` is a TLS failure, else None."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _explain_verify(exc, endpoint, files)
    if isinstance(exc, ssl.SSLError):
        return ConnectionSetupError(
            protocol_setting,
            f"TLS handshake with {endpoint.address} ({endpoint.setting}) failed: "
            f"{exc.reason or exc}. The server may not speak TLS on that port; check "
            f"{protocol_setting} and {endpoint.setting}",
        )
    return None


def _explain_verify(
    exc: ssl.SSLCertVerificationError, endpoint: Endpoint, files: TLSFiles
) -> ConnectionSetupError:
    code = exc.verify_code
    trusted = (
        f"{files.cafile_setting}={files.cafile}"
        if files.cafile
        else (f"the system's CA store ({files.cafile_setting} is not set)")
    )
    where = f"{endpoint.address} ({endpoint.setting})"
    if code in (_EXPIRED, _NOT_YET_VALID):
        when = "has expired" if code == _EXPIRED else "is not valid yet"
        stale = _expired_ca(files.cafile)
        if stale is not None:
            return ConnectionSetupError(
                files.cafile_setting,
                f"{files.cafile_setting}={files.cafile} holds a CA certificate that {stale}; "
                "replace the file with the CA's current certificate",
            )
        return ConnectionSetupError(
            endpoint.setting,
            f"the certificate presented by {where} {when} (checked against {trusted}): renew "
            f"the server's certificate, or set {endpoint.setting} to a server with a valid one",
        )
    if code in _UNTRUSTED:
        return ConnectionSetupError(
            files.cafile_setting,
            f"the certificate presented by {where} is not issued by a CA in {trusted} "
            f"({exc.verify_message}); set {files.cafile_setting} to the PEM file of the CA that "
            "issued it",
        )
    if code in (_HOSTNAME_MISMATCH, _IP_MISMATCH):
        return ConnectionSetupError(
            endpoint.setting,
            f"the certificate presented by {where} does not name that host "
            f"({exc.verify_message}); use a host name the certificate lists in "
            f"{endpoint.setting}",
        )
    return ConnectionSetupError(
        files.cafile_setting,
        f"the certificate presented by {where} failed verification against {trusted}: "
        f"{exc.verify_message} (OpenSSL code {code})",
    )


def _expired_ca(cafile: str | None) -> str | None:
    """How the first CA certificate in ``cafile`` that is out of its validity is out, if any."""
    if not cafile:
        return None
    try:
        with open(cafile, "rb") as f:
            certs = x509.load_pem_x509_certificates(f.read())
    except (OSError, ValueError):
        return None
    now = datetime.datetime.now(datetime.UTC)
    for cert in certs:
        if cert.not_valid_after_utc < now:
            return f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        if cert.not_valid_before_utc > now:
            return f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
    return None


async def tls_probe(host: str, port: int, timeout_s: float = 5.0) -> str:
    """``"tls"`` when ``host:port`` completes a TLS handshake (nothing verified, nothing sent
    after it), ``"plain"`` when it accepts TCP but no TLS, ``"unreachable"`` otherwise: tells
    a protocol mismatch apart from an outage."""
    if not await _opens(host, port, None, timeout_s):
        return "unreachable"
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    return "tls" if await _opens(host, port, probe, timeout_s) else "plain"


async def _opens(host: str, port: int, tls: ssl.SSLContext | None, timeout_s: float) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=tls), timeout_s
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return True
