"""Trigger service settings (env prefix ``FLYWHEEL_TRIGGER_``).

Per-worker policy (thresholds, windows, cooldowns) is NOT here: operators change it live on the
compacted ``trigger-config`` topic (``flywheel trigger set``). These are service-wide knobs::

    FLYWHEEL_TRIGGER_TICK_SECONDS=1.0            clock evaluation (periodic, time windows)
    FLYWHEEL_TRIGGER_DEBOUNCE_EVALUATIONS=2      consecutive low-accuracy labeled events needed
    FLYWHEEL_TRIGGER_DEBOUNCE_SECONDS=           ...or low for this long (unset = off)
    FLYWHEEL_TRIGGER_IN_FLIGHT_TIMEOUT_SECONDS=3600
    FLYWHEEL_TRIGGER_DEFAULT_POLICY=             policy for workers without a config (unset = none)
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from dspy_flywheel.store.stateful import StatefulSettings


class TriggerSettings(StatefulSettings):
    """Also the knobs every stateful service has (``store.stateful.StatefulSettings``)."""

    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_TRIGGER_", extra="ignore")

    metrics_port: int | None = 9465  # Prometheus /metrics; 0: off
    debounce_evaluations: int = Field(default=2, ge=1)
    debounce_seconds: float | None = Field(default=None, gt=0)
    in_flight_timeout_seconds: float = Field(default=3600.0, gt=0)
    reset_window_on_success: bool = True
    default_policy: str | None = None
    exec_cache_ttl_seconds: float = Field(default=3600.0, gt=0)
    exec_cache_max_entries: int = Field(default=100_000, ge=1)
