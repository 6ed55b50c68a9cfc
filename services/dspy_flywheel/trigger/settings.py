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

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from dspy_flywheel.settings import FlywheelSettings


class TriggerSettings(FlywheelSettings):
    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_TRIGGER_", extra="ignore")

    metrics_port: int | None = 9465  # Prometheus /metrics; 0: off

    tick_seconds: float = Field(default=1.0, gt=0)
    debounce_evaluations: int = Field(default=2, ge=1)
    debounce_seconds: float | None = Field(default=None, gt=0)
    in_flight_timeout_seconds: float = Field(default=3600.0, gt=0)
    reset_window_on_success: bool = True
    default_policy: str | None = None
    exec_cache_ttl_seconds: float = Field(default=3600.0, gt=0)
    exec_cache_max_entries: int = Field(default=100_000, ge=1)
    pending_feedback_ttl_seconds: float = Field(default=600.0, gt=0)
    start_from: Literal["earliest", "latest"] = "earliest"
    fetch_max_wait_ms: int = Field(default=100, ge=0)
    max_batch_records: int = Field(default=500, ge=1)
    scope: str | None = None  # state namespace in the DB; default: the topic prefix
    migrate: bool = True  # apply DB migrations at start
    leader_lock: bool = True  # one active instance per scope (PostgreSQL advisory lock)

    @property
    def state_scope(self) -> str:
        return self.scope if self.scope is not None else self.topic_prefix
