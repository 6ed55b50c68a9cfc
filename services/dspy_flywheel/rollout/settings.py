"""Rollout service settings (env prefix ``FLYWHEEL_ROLLOUT_``).

Per-worker canary settings (share, confidence, margin, minimum / maximum samples, maximum
duration) are NOT here: operators change them live on the compacted ``rollout-config`` topic
(``flywheel programs config``). These are service-wide knobs::

    FLYWHEEL_ROLLOUT_TICK_SECONDS=1.0          clock check (a canary's maximum duration)
    FLYWHEEL_ROLLOUT_CACHE_TTL_SECONDS=3600    how long an execution waits for its label
    FLYWHEEL_ROLLOUT_START_FROM=earliest       first start: read the topics from the beginning
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from dspy_flywheel.store.stateful import StatefulSettings


class RolloutSettings(StatefulSettings):
    """Also the knobs every stateful service has (``store.stateful.StatefulSettings``)."""

    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_ROLLOUT_", extra="ignore")

    cache_ttl_seconds: float = Field(default=3600.0, gt=0)
    cache_max_entries: int = Field(default=200_000, ge=1)
    metrics_port: int | None = 9468  # Prometheus /metrics; 0: off
    changes_group_id: str = "flywheel-rollout-changes"  # checks program-rollouts (its DLQ)
