"""Connection settings shared by every service, read from the environment.

Kafka (prefix ``KAFKA_``)::

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092     # required by services
    KAFKA_SECURITY_PROTOCOL=PLAINTEXT           # SSL | SASL_PLAINTEXT | SASL_SSL
    KAFKA_SASL_MECHANISM=PLAIN                  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD   # or KAFKA_SASL_PASSWORD_FILE=/run/secrets/x
    KAFKA_SSL_CAFILE                            # CA bundle (PEM); unset: the system store
    KAFKA_SSL_CERTFILE / KAFKA_SSL_KEYFILE      # client certificate, for mutual TLS
    KAFKA_SSL_INSECURE_SKIP_VERIFY=false        # true: no certificate/host check (logged)

PostgreSQL (prefix ``DATABASE_``)::

    DATABASE_URL=postgresql://user@host:5432/flywheel
    DATABASE_PASSWORD / DATABASE_PASSWORD_FILE  # or the password inside DATABASE_URL
    DATABASE_SSLMODE=disable                    # require | verify-ca | verify-full
    DATABASE_SSLROOTCERT=/path/ca.pem           # unset: the system store
    DATABASE_SSLCERT / DATABASE_SSLKEY          # client certificate

``sslmode``/``sslrootcert``/``sslcert``/``sslkey`` may also come as query parameters of
``DATABASE_URL`` (as libpq reads them). ``require`` and ``verify-ca`` skip checks and log a
warning; ``allow``/``prefer`` (silent fall-back to plaintext) are refused.

Passwords come from these settings or the files they name (a trailing newline is dropped), never
from a command line, and are never logged. A setting that cannot work (a missing CA file, SASL
without a user, two sources for one password) raises ``ConnectionSetupError`` naming it.

Topics: ``FLYWHEEL_TOPIC_PREFIX`` (default empty) prefixes every topic name and consumer group.
References a job may name beyond the worker's own: ``FLYWHEEL_OPTIMIZER_ALLOWED_REFS`` (read by
the optimizer, the manager and the CLI alike; see :mod:`dspy_flywheel.contracts.refs`).
Metrics: ``<prefix>METRICS_PORT`` serves Prometheus ``/metrics`` (each service has its default;
0 turns it off; workers: off unless set) on ``<prefix>METRICS_HOST`` (default 127.0.0.1).
Each service adds its own settings class with its own prefix (``FLYWHEEL_COLLECTOR_`` ...).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal, Self, get_args
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dspy_flywheel.contracts.refs import ALLOWED_REFS_ENV, RefAllowList
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.security.errors import ConnectionSetupError
from dspy_flywheel.security.tls import TLSFiles, client_context

SslMode = Literal["disable", "require", "verify-ca", "verify-full"]
_URL_TLS_KEYS = ("sslmode", "sslrootcert", "sslcert", "sslkey")


def read_secret(value: SecretStr | None, file: Path | None, setting: str) -> SecretStr | None:
    """The secret from ``<setting>`` or from the file ``<setting>_FILE`` names (not both)."""
    if file is None:
        return value
    if value is not None:
        raise ConnectionSetupError(
            setting, f"both {setting} and {setting}_FILE are set; keep one of them"
        )
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConnectionSetupError(
            f"{setting}_FILE", f"{setting}_FILE={file}: cannot read it ({exc.strerror or exc})"
        ) from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise ConnectionSetupError(f"{setting}_FILE", f"{setting}_FILE={file} is empty")
    return SecretStr(secret)


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore", env_ignore_empty=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_insecure_skip_verify: bool = False
    _ssl_context: ssl.SSLContext | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check(self) -> Self:
        self.sasl_password = read_secret(
            self.sasl_password, self.sasl_password_file, "KAFKA_SASL_PASSWORD"
        )
        self.sasl_password_file = None
        if self.uses_sasl:
            if not self.sasl_username:
                raise ConnectionSetupError(
                    "KAFKA_SASL_USERNAME",
                    f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs KAFKA_SASL_USERNAME",
                )
            if self.sasl_password is None:
                raise ConnectionSetupError(
                    "KAFKA_SASL_PASSWORD",
                    f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs KAFKA_SASL_PASSWORD "
                    "or KAFKA_SASL_PASSWORD_FILE",
                )
        if self.uses_tls:
            self._ssl_context = client_context(
                self.tls_files,
                verify=not self.ssl_insecure_skip_verify,
                check_hostname=True,
                insecure_setting="KAFKA_SSL_INSECURE_SKIP_VERIFY",
            )
        return self

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL")

    @property
    def tls_files(self) -> TLSFiles:
        return TLSFiles(
            self.ssl_cafile,
            self.ssl_certfile,
            self.ssl_keyfile,
            "KAFKA_SSL_CAFILE",
            "KAFKA_SSL_CERTFILE",
            "KAFKA_SSL_KEYFILE",
        )

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka producers, consumers and admin clients (faust takes
        the same through ``collector.faust_app.faust_credentials``)."""
        kw: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self._ssl_context is not None:
            kw["ssl_context"] = self._ssl_context
        if self.uses_sasl:
            kw["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        return kw

    def faust_broker(self) -> str:
        return ";".join(f"kafka://{h}" for h in self.bootstrap_servers.split(","))


class PostgresSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DATABASE_", extra="ignore", env_ignore_empty=True)

    url: str = "postgresql://postgres@127.0.0.1:5432/flywheel"
    password: SecretStr | None = None
    password_file: Path | None = None
    sslmode: SslMode | None = None
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    pool_min_size: int = 1
    pool_max_size: int = 10
    _ssl_context: ssl.SSLContext | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check(self) -> Self:
        self.password = read_secret(self.password, self.password_file, "DATABASE_PASSWORD")
        self.password_file = None
        parts = urlsplit(self.url)
        if self.password is not None and parts.password:
            raise ConnectionSetupError(
                "DATABASE_PASSWORD",
                "DATABASE_URL holds a password and DATABASE_PASSWORD(_FILE) is set too; keep one",
            )
        query = dict(parse_qsl(parts.query))
        for key in _URL_TLS_KEYS:
            self._merge_url_param(key, query.get(key))
        if self.sslmode is None:
            self.sslmode = "disable"
        if self.sslmode != "disable":
            self._ssl_context = client_context(
                self.tls_files,
                verify=self.sslmode != "require",
                check_hostname=self.sslmode == "verify-full",
                insecure_setting=f"DATABASE_SSLMODE={self.sslmode}",
            )
        return self

    @property
    def tls_files(self) -> TLSFiles:
        return TLSFiles(
            self.sslrootcert,
            self.sslcert,
            self.sslkey,
            "DATABASE_SSLROOTCERT",
            "DATABASE_SSLCERT",
            "DATABASE_SSLKEY",
        )

    def _merge_url_param(self, key: str, from_url: str | None) -> None:
        if from_url is None:
            return
        current = getattr(self, key)
        if current is not None and current != from_url:
            raise ConnectionSetupError(
                f"DATABASE_{key.upper()}",
                f"DATABASE_{key.upper()}={current} and {key}={from_url} in DATABASE_URL "
                "disagree; keep one",
            )
        if key == "sslmode" and from_url not in get_args(SslMode):
            raise ConnectionSetupError(
                "DATABASE_URL",
                f"sslmode={from_url} in DATABASE_URL is not supported: use disable, require, "
                "verify-ca or verify-full (allow/prefer fall back to plaintext silently)",
            )
        setattr(self, key, from_url)

    def ssl_arg(self) -> ssl.SSLContext | bool:
        """asyncpg's ``ssl`` argument: the verifying context, or False (``disable``)."""
        return self._ssl_context if self._ssl_context is not None else False


class FlywheelSettings(BaseSettings):
    """Base for service settings: connections plus the topic prefix."""

    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_", extra="ignore")

    topic_prefix: str = Field(default="", validation_alias="FLYWHEEL_TOPIC_PREFIX")
    db_schema: str | None = Field(default=None, validation_alias="FLYWHEEL_DB_SCHEMA")
    allowed_refs: str = Field(default="", validation_alias=ALLOWED_REFS_ENV)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @field_validator("allowed_refs")
    @classmethod
    def _valid_allow_list(cls, value: str) -> str:
        RefAllowList.parse(value)  # a malformed entry stops the service at start, not later
        return value

    @property
    def ref_allow_list(self) -> RefAllowList:
        return RefAllowList.parse(self.allowed_refs)

    def consumer_group(self, group_id: str) -> str:
        """``group_id`` in this namespace: two prefixes never share (or rebalance) a group."""
        return f"{self.topic_prefix}{group_id}"
