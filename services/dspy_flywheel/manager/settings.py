"""Manager settings (env prefix ``FLYWHEEL_MANAGER_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from dspy_flywheel.settings import FlywheelSettings


class ManagerSettings(FlywheelSettings):
    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_MANAGER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8470
    default_optimizer: str = "BootstrapFewShot"
    accuracy_window: int = 100
    trigger_scope: str | None = None  # trigger state scope; default: the topic prefix
