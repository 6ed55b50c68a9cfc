"""Why a PostgreSQL connection failed, in terms of the setting to fix.

``explain(exc, settings)`` turns what asyncpg raised into a ``ConnectionSetupError`` naming the
setting (wrong password, plaintext client at a hostssl-only server, a server without TLS,
unknown CA, expired or mismatched certificate, unknown database), or returns None when the
settings are not the problem (e.g. the server is down: retrying may help).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import asyncpg

from dspy_flywheel.security.errors import ConnectionSetupError
from dspy_flywheel.security.tls import Endpoint, explain_tls_failure
from dspy_flywheel.settings import PostgresSettings

_URL = "DATABASE_URL"
_SSLMODE = "DATABASE_SSLMODE"


def explain(exc: BaseException, settings: PostgresSettings) -> ConnectionSetupError | None:
    parts = urlsplit(settings.url)
    address = f"{parts.hostname or '127.0.0.1'}:{parts.port or 5432}"
    if tls := explain_tls_failure(exc, Endpoint(address, _URL), settings.tls_files, _SSLMODE):
        return tls
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return ConnectionSetupError(
            "DATABASE_PASSWORD",
            f"{address} refused the password ({exc}): check DATABASE_PASSWORD / "
            "DATABASE_PASSWORD_FILE (or the password and user in DATABASE_URL)",
        )
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        if "no encryption" in str(exc):
            return ConnectionSetupError(
                _SSLMODE,
                f"{address} accepts only TLS connections and {_SSLMODE}={settings.sslmode} "
                f"sent none ({exc}): set {_SSLMODE}=verify-full (with DATABASE_SSLROOTCERT for "
                "a private CA)",
            )
        return ConnectionSetupError(_URL, f"{address} refused the connection: {exc}")
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return ConnectionSetupError(_URL, f"{address}: {exc}; fix the database name in {_URL}")
    if isinstance(exc, ConnectionError) and "rejected SSL upgrade" in str(exc):
        return ConnectionSetupError(
            _SSLMODE,
            f"{address} does not offer TLS but {_SSLMODE}={settings.sslmode} requires it: "
            f"enable ssl on the server, or (trusted networks only) set {_SSLMODE}=disable",
        )
    return None
