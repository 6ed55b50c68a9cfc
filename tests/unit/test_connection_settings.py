"""KafkaSettings / PostgresSettings: passwords from settings or files, verification on by
default, and a ConnectionSetupError naming the setting for settings that cannot work."""

from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path

import pytest

from dspy_flywheel.bus.preflight import check_kafka
from dspy_flywheel.security import tls
from dspy_flywheel.security.errors import ConnectionSetupError
from dspy_flywheel.settings import KafkaSettings, PostgresSettings
from dspy_flywheel.store.pool import connect_kwargs

SECRET = "s3cret-Value-42"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith(("KAFKA_", "DATABASE_")):
            monkeypatch.delenv(name)


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    """A throwaway CA certificate (openssl, as ops/secure.sh makes them)."""
    key, cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=unit CA",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert


def _secret_file(tmp_path: Path, text: str = SECRET + "\n") -> Path:
    path = tmp_path / "password"
    path.write_text(text)
    return path


def _setup_error(excinfo: pytest.ExceptionInfo[ConnectionSetupError], setting: str) -> None:
    assert excinfo.value.setting == setting
    assert setting in str(excinfo.value)
    assert SECRET not in str(excinfo.value)


def test_kafka_password_from_file_and_verification_on(
    tmp_path: Path, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "flywheel")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD_FILE", str(_secret_file(tmp_path)))
    monkeypatch.setenv("KAFKA_SSL_CAFILE", str(ca_file))
    kafka = KafkaSettings()
    kw = kafka.client_kwargs()
    assert kw["sasl_plain_password"] == SECRET  # trailing newline dropped
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512"
    context = kw["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert SECRET not in repr(kafka)


def test_plaintext_kafka_has_no_tls() -> None:
    assert "ssl_context" not in KafkaSettings().client_kwargs()


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_PASSWORD": SECRET},
            "KAFKA_SASL_USERNAME",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u"},
            "KAFKA_SASL_PASSWORD",
        ),
        (
            {"KAFKA_SASL_PASSWORD": SECRET, "KAFKA_SASL_PASSWORD_FILE": "{file}"},
            "KAFKA_SASL_PASSWORD",
        ),
        ({"KAFKA_SASL_PASSWORD_FILE": "{missing}"}, "KAFKA_SASL_PASSWORD_FILE"),
        ({"KAFKA_SASL_PASSWORD_FILE": "{empty}"}, "KAFKA_SASL_PASSWORD_FILE"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "{missing}"}, "KAFKA_SSL_CAFILE"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "{file}"}, "KAFKA_SSL_CAFILE"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEYFILE": "{file}"}, "KAFKA_SSL_CERTFILE"),
    ],
)
def test_kafka_settings_that_cannot_work(
    env: dict[str, str], setting: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    paths = {
        "{file}": str(_secret_file(tmp_path)),  # not a certificate either
        "{missing}": str(tmp_path / "missing"),
        "{empty}": str(empty),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, paths.get(value, value))
    with pytest.raises(ConnectionSetupError) as excinfo:
        KafkaSettings()
    _setup_error(excinfo, setting)


def test_postgres_password_from_file_and_url_tls_parameters(
    tmp_path: Path, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "DATABASE_URL",
        f"postgresql://flywheel@db.example:5432/flywheel?sslmode=verify-full&sslrootcert={ca_file}",
    )
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", str(_secret_file(tmp_path)))
    pg = PostgresSettings()
    assert pg.sslmode == "verify-full"
    assert pg.sslrootcert == str(ca_file)
    context = pg.ssl_arg()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert connect_kwargs(pg)["password"] == SECRET
    assert SECRET not in repr(pg)


def test_postgres_default_is_plaintext(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:{SECRET}@h:5432/db")
    pg = PostgresSettings()
    assert pg.ssl_arg() is False
    assert pg.sslmode == "disable"


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"DATABASE_URL": "postgresql://u@h/db?sslmode=prefer"}, "DATABASE_URL"),
        (
            {"DATABASE_URL": "postgresql://u@h/db?sslmode=require", "DATABASE_SSLMODE": "disable"},
            "DATABASE_SSLMODE",
        ),
        (
            {"DATABASE_URL": f"postgresql://u:{SECRET}@h/db", "DATABASE_PASSWORD": "other"},
            "DATABASE_PASSWORD",
        ),
        ({"DATABASE_PASSWORD_FILE": "/nonexistent/flywheel-password"}, "DATABASE_PASSWORD_FILE"),
        (
            {"DATABASE_SSLMODE": "verify-full", "DATABASE_SSLROOTCERT": "/nonexistent/ca.pem"},
            "DATABASE_SSLROOTCERT",
        ),
    ],
)
def test_postgres_settings_that_cannot_work(
    env: dict[str, str], setting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConnectionSetupError) as excinfo:
        PostgresSettings()
    _setup_error(excinfo, setting)


@pytest.mark.parametrize(
    ("mode", "warning"), [("require", "NOT verified"), ("verify-ca", "host name is NOT checked")]
)
def test_postgres_weaker_modes_warn(
    mode: str, warning: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tls, "_warned", set())
    monkeypatch.setenv("DATABASE_SSLMODE", mode)
    context = PostgresSettings().ssl_arg()
    assert isinstance(context, ssl.SSLContext)
    assert not context.check_hostname
    assert (context.verify_mode == ssl.CERT_NONE) == (mode == "require")
    [record] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert record.getMessage().startswith(f"INSECURE: DATABASE_SSLMODE={mode}")
    assert warning in record.getMessage()


async def test_a_malformed_bootstrap_list_names_the_setting() -> None:
    with pytest.raises(ConnectionSetupError) as excinfo:
        await check_kafka(KafkaSettings(bootstrap_servers="broker-1:9093,broker-2:ninety"))
    _setup_error(excinfo, "KAFKA_BOOTSTRAP_SERVERS")
