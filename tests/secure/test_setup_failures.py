"""Settings that cannot work fail at start-up, fast, with a message naming the setting to fix.

The four faults of issue 21 (wrong password, unknown CA, plaintext client at a TLS-only
listener, expired certificate) plus an expired CA, each against Kafka and PostgreSQL: at the
connection layer (``check_kafka``, ``store.pool.connect``) and for a real service process
(exit code 2, one ERROR line, no traceback, no retry). The broker and the database are the
secure stack's; an expired server certificate is presented by a TLS server in this process
(the stack's CA signs it), since the stack's own certificates are valid.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from dspy_flywheel.bus.preflight import check_kafka
from dspy_flywheel.security.errors import ConnectionSetupError
from dspy_flywheel.settings import KafkaSettings, PostgresSettings
from dspy_flywheel.store.pool import connect
from tests.secure.certs import Issued, new_ca, server_cert, tls_server
from tests.secure.stack import ROOT, SecureStack

FAULTS = ("wrong password", "unknown CA", "plaintext client", "expired certificate", "expired CA")
FAST_S = 10.0  # a setting fault is reported at once, not after retries
SERVICE_EXIT_S = 45.0  # includes the service's imports (dspy: seconds on 2 busy cores)


@dataclass
class Fault:
    kafka_env: dict[str, str]  # overrides of the stack's environment
    kafka_setting: str  # the setting the message must name
    pg_env: dict[str, str]
    pg_setting: str

    def on(self, side: str) -> tuple[dict[str, str], str]:
        """(environment overrides, setting to name) on the "kafka" or "postgres" side."""
        return (
            (self.kafka_env, self.kafka_setting)
            if side == "kafka"
            else (self.pg_env, self.pg_setting)
        )


@asynccontextmanager
async def injected(fault: str, stack: SecureStack, tmp: Path) -> AsyncIterator[Fault]:
    """The stack's environment, broken one way."""
    if fault == "wrong password":
        wrong = tmp / "wrong-password"
        wrong.write_text("not-the-password\n")
        yield Fault(
            {"KAFKA_SASL_PASSWORD_FILE": str(wrong)},
            "KAFKA_SASL_PASSWORD",
            {"DATABASE_PASSWORD_FILE": str(wrong)},
            "DATABASE_PASSWORD",
        )
    elif fault == "unknown CA":
        other = new_ca(tmp / "other-ca")
        yield Fault(
            {"KAFKA_SSL_CAFILE": str(other.cert)},
            "KAFKA_SSL_CAFILE",
            {"DATABASE_SSLROOTCERT": str(other.cert)},
            "DATABASE_SSLROOTCERT",
        )
    elif fault == "plaintext client":
        yield Fault(
            {"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"},
            "KAFKA_SECURITY_PROTOCOL",
            {"DATABASE_SSLMODE": "disable"},
            "DATABASE_SSLMODE",
        )
    elif fault == "expired certificate":
        expired = server_cert(tmp, Issued(stack.ca_file, stack.ca_key), expired=True)
        async with tls_server(expired) as kafka, tls_server(expired, postgres=True) as pg:
            yield Fault(
                {"KAFKA_BOOTSTRAP_SERVERS": kafka},
                "KAFKA_BOOTSTRAP_SERVERS",
                {"DATABASE_URL": f"postgresql://flywheel@{pg}/flywheel"},
                "DATABASE_URL",
            )
    else:
        assert fault == "expired CA"
        old_ca = new_ca(tmp / "expired-ca", expired=True)
        leaf = server_cert(tmp, old_ca)
        async with tls_server(leaf) as kafka, tls_server(leaf, postgres=True) as pg:
            yield Fault(
                {"KAFKA_BOOTSTRAP_SERVERS": kafka, "KAFKA_SSL_CAFILE": str(old_ca.cert)},
                "KAFKA_SSL_CAFILE",
                {
                    "DATABASE_URL": f"postgresql://flywheel@{pg}/flywheel",
                    "DATABASE_SSLROOTCERT": str(old_ca.cert),
                },
                "DATABASE_SSLROOTCERT",
            )


def assert_names(message: str, setting: str, stack: SecureStack) -> None:
    assert setting in message, message
    leaked = [name for name, value in stack.passwords().items() if value in message]
    assert leaked == [], f"{leaked} in {message}"


async def _open(side: str, stack: SecureStack, env: dict[str, str]) -> None:
    """Kafka's start-up check, or a PostgreSQL connection, with the stack's settings + env."""
    if side == "kafka":
        await check_kafka(stack.settings(KafkaSettings, **env))
    else:
        conn = await connect(stack.settings(PostgresSettings, **env))
        await conn.close()


@pytest.mark.parametrize("side", ["kafka", "postgres"])
@pytest.mark.parametrize("fault", FAULTS)
async def test_fault_names_the_setting(
    fault: str, side: str, secure_stack: SecureStack, tmp_path: Path
) -> None:
    async with injected(fault, secure_stack, tmp_path) as broken:
        env, setting = broken.on(side)
        started = time.monotonic()
        with pytest.raises(ConnectionSetupError) as error:
            await asyncio.wait_for(_open(side, secure_stack, env), 2 * FAST_S)
    assert time.monotonic() - started < FAST_S
    assert error.value.setting == setting
    assert_names(str(error.value), setting, secure_stack)


def _start_service(env: dict[str, str], tmp: Path) -> tuple[int, str, float]:
    """Run the trigger service until it exits; (exit code, output, seconds)."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DATABASE_"))}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "dspy_flywheel.trigger"],
        env={**kept, **env, "FLYWHEEL_TOPIC_PREFIX": f"t{tmp.name[-12:]}-"},
        capture_output=True,
        text=True,
        timeout=SERVICE_EXIT_S + 30,
        cwd=ROOT,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


@pytest.mark.parametrize("side", ["kafka", "postgres"])
@pytest.mark.parametrize("fault", FAULTS)
async def test_service_exits_naming_the_setting(
    fault: str, side: str, secure_stack: SecureStack, tmp_path: Path
) -> None:
    async with injected(fault, secure_stack, tmp_path) as broken:
        override, setting = broken.on(side)
        code, output, seconds = await asyncio.to_thread(
            _start_service, {**secure_stack.env, **override}, tmp_path
        )
    assert code == 2, output
    assert seconds < SERVICE_EXIT_S, output
    errors = [line for line in output.splitlines() if " ERROR " in line]
    assert len(errors) == 1, output
    assert "cannot start:" in errors[0], output
    assert "Traceback" not in output, output
    assert_names(errors[0], setting, secure_stack)
    assert_names(output, setting, secure_stack)


def test_cli_names_the_setting(secure_stack: SecureStack, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password")
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DATABASE_"))}
    runs = {
        "KAFKA_SASL_PASSWORD": (["topics", "create"], {"KAFKA_SASL_PASSWORD_FILE": str(wrong)}),
        "DATABASE_PASSWORD": (["jobs", "list"], {"DATABASE_PASSWORD_FILE": str(wrong)}),
    }
    for setting, (args, override) in runs.items():
        proc = subprocess.run(
            [sys.executable, "-m", "dspy_flywheel.cli", *args],
            env={**kept, **secure_stack.env, **override},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "flywheel: cannot connect:" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        assert_names(proc.stderr, setting, secure_stack)
