"""Verification of the server's certificate and host name is on by default; turning it off
takes an explicit setting, and a loud WARNING names it."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest

from dspy_flywheel.bus.preflight import check_kafka
from dspy_flywheel.security import tls
from dspy_flywheel.settings import KafkaSettings, PostgresSettings
from dspy_flywheel.store.pool import connect
from tests.secure.certs import new_ca
from tests.secure.stack import SecureStack


def _verifying(context: object) -> bool:
    assert isinstance(context, ssl.SSLContext)
    return context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_the_stack_environment_verifies(secure_stack: SecureStack) -> None:
    kafka = secure_stack.settings(KafkaSettings)
    pg = secure_stack.settings(PostgresSettings)
    assert _verifying(kafka.client_kwargs()["ssl_context"])
    assert pg.sslmode == "verify-full"
    assert _verifying(pg.ssl_arg())


async def test_turning_verification_off_is_explicit_and_loud(
    secure_stack: SecureStack,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tls, "_warned", set())  # warnings are once per process
    caplog.set_level(logging.WARNING, logger="dspy_flywheel")
    unknown = str(new_ca(tmp_path).cert)
    kafka = secure_stack.settings(
        KafkaSettings, KAFKA_SSL_CAFILE=unknown, KAFKA_SSL_INSECURE_SKIP_VERIFY="true"
    )
    pg = secure_stack.settings(
        PostgresSettings, DATABASE_SSLROOTCERT=unknown, DATABASE_SSLMODE="require"
    )
    await check_kafka(kafka)  # connects although no CA it trusts issued the broker's cert
    conn = await connect(pg)
    try:
        assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    finally:
        await conn.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for setting in ("KAFKA_SSL_INSECURE_SKIP_VERIFY", "DATABASE_SSLMODE=require"):
        assert [w for w in warnings if w.startswith(f"INSECURE: {setting}")], warnings
