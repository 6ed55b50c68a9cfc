"""Connection settings shared by every service, read from the environment.

Kafka (prefix ``KAFKA_``)::

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092     # required by services
    KAFKA_SECURITY_PROTOCOL=PLAINTEXT           # SSL | SASL_PLAINTEXT | SASL_SSL
    KAFKA_SASL_MECHANISM=PLAIN                  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD
    KAFKA_SSL_CAFILE / KAFKA_SSL_CERTFILE / KAFKA_SSL_KEYFILE

PostgreSQL (prefix ``DATABASE_``)::

    DATABASE_URL=postgresql://user@host:5432/flywheel
    DATABASE_SSLMODE=disable                    # disable | require | verify-ca | verify-full
    DATABASE_SSLROOTCERT=/path/ca.pem

Topics: ``FLYWHEEL_TOPIC_PREFIX`` (default empty) prefixes every topic name and consumer group.
References a job may name beyond the worker's own: ``FLYWHEEL_OPTIMIZER_ALLOWED_REFS`` (read by
the optimizer, the manager and the CLI alike; see :mod:`dspy_flywheel.contracts.refs`).
Metrics: ``<prefix>METRICS_PORT`` serves Prometheus ``/metrics`` (each service has its default;
0 turns it off; workers: off unless set) on ``<prefix>METRICS_HOST`` (default 127.0.0.1).
Each service adds its own settings class with its own prefix (``FLYWHEEL_COLLECTOR_`` ...).
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dspy_flywheel.contracts.refs import ALLOWED_REFS_ENV, RefAllowList
from dspy_flywheel.contracts.topics import Topics


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka producers, consumers and admin clients."""
        kw: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if "SSL" in self.security_protocol:
            ctx = ssl.create_default_context(cafile=self.ssl_cafile)
            if self.ssl_certfile:
                ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
            kw["ssl_context"] = ctx
        if self.security_protocol.startswith("SASL"):
            kw["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        return kw

    def faust_broker(self) -> str:
        return ";".join(f"kafka://{h}" for h in self.bootstrap_servers.split(","))


class PostgresSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DATABASE_", extra="ignore")

    url: str = "postgresql://postgres@127.0.0.1:5432/flywheel"
    sslmode: Literal["disable", "require", "verify-ca", "verify-full"] = "disable"
    sslrootcert: str | None = None
    pool_min_size: int = 1
    pool_max_size: int = 10

    def ssl_arg(self) -> ssl.SSLContext | bool:
        if self.sslmode == "disable":
            return False
        ctx = ssl.create_default_context(cafile=self.sslrootcert)
        if self.sslmode in ("require", "verify-ca"):
            ctx.check_hostname = False
        if self.sslmode == "require":
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


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
