"""Manager settings (env prefix ``FLYWHEEL_MANAGER_``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from dspy_flywheel.compile.catalog import DEFAULT_OPTIMIZER
from dspy_flywheel.settings import FlywheelSettings


class ManagerSettings(FlywheelSettings):
    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_MANAGER_", extra="ignore")

    metrics_port: int | None = 9467  # Prometheus /metrics; 0: off

    host: str = "127.0.0.1"
    port: int = 8470
    default_optimizer: str = DEFAULT_OPTIMIZER
    accuracy_window: int = 100
    trigger_scope: str | None = None  # trigger state scope; default: the topic prefix
    dashboard_refresh_s: int = 10  # the dashboard pages reload themselves this often
    # Jaeger's query API (ops/stack env exports FLYWHEEL_JAEGER_URL): job pages draw the trace.
    jaeger_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("FLYWHEEL_MANAGER_JAEGER_URL", "FLYWHEEL_JAEGER_URL"),
    )
