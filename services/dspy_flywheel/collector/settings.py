"""Collector settings (env prefix ``FLYWHEEL_COLLECTOR_``), plus encryption keys.

Service knobs::

    FLYWHEEL_COLLECTOR_ENGINE=faust          faust (agent, default) | kafka (aiokafka batches)
    FLYWHEEL_COLLECTOR_GROUP_ID=flywheel-collector
    FLYWHEEL_COLLECTOR_BATCH_MAX=2000        events per DB transaction
    FLYWHEEL_COLLECTOR_BATCH_WITHIN_S=0.1    flush a partial batch after this long (latency)
    FLYWHEEL_COLLECTOR_HOLD_S=1.0            keep an unmatched execution/feedback in memory this
                                             long for its partner before writing it to the
                                             join table (not acknowledged meanwhile)
    FLYWHEEL_COLLECTOR_MAX_HELD=20000        ...and at most this many events
    FLYWHEEL_COLLECTOR_SESSION_TIMEOUT_S=10  Kafka group session: a killed instance's partitions
                                             move to the others after this long
    FLYWHEEL_COLLECTOR_EXPIRY_INTERVAL_S=5   how often the join state is swept for expired entries
    FLYWHEEL_COLLECTOR_RETENTION_INTERVAL_S=600
    FLYWHEEL_COLLECTOR_PROCESSED_TTL_H=168   keep processed event ids this long (replay window)

Default quality policy (per-worker overrides live in the ``collector_policies`` table, see
``flywheel collector policy``)::

    FLYWHEEL_COLLECTOR_ACCEPT_UNLABELED_SUCCESS=false   store successes without waiting for feedback
    FLYWHEEL_COLLECTOR_MIN_SCORE=            drop examples scored below this (unset = keep all)
    FLYWHEEL_COLLECTOR_MAX_FIELD_CHARS=20000 drop examples whose inputs/outputs/label JSON is longer
    FLYWHEEL_COLLECTOR_DROP_DUPLICATES=true  drop inputs already stored for the worker
    FLYWHEEL_COLLECTOR_PENDING_TTL_S=3600    how long an execution waits for feedback (and back)
    FLYWHEEL_COLLECTOR_RETENTION_MAX_AGE_DAYS=     FLYWHEEL_COLLECTOR_RETENTION_MAX_COUNT=

Encryption keys come from ``FLYWHEEL_ENCRYPTION_*`` (see :mod:`dspy_flywheel.security.crypto`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from dspy_flywheel.collector.policy import POLICY_COLUMNS, WorkerPolicy
from dspy_flywheel.security.crypto import EncryptionSettings
from dspy_flywheel.settings import FlywheelSettings


class CollectorSettings(FlywheelSettings):
    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_COLLECTOR_", extra="ignore")

    metrics_port: int | None = 9464  # Prometheus /metrics; 0: off

    engine: Literal["faust", "kafka"] = "faust"
    group_id: str = "flywheel-collector"
    batch_max: int = Field(default=2000, ge=1)
    batch_within_s: float = Field(default=0.1, gt=0)
    hold_s: float = Field(default=1.0, ge=0)
    max_held: int = Field(default=20_000, ge=0)
    commit_interval_s: float = Field(default=1.0, gt=0)
    session_timeout_s: float = Field(default=10.0, ge=6)  # how fast a dead member is evicted
    expiry_interval_s: float = Field(default=5.0, gt=0)
    retention_interval_s: float = Field(default=600.0, gt=0)
    processed_ttl_h: float = Field(default=168.0, gt=0)
    policy_refresh_s: float = Field(default=30.0, gt=0)
    migrate: bool = True
    data_dir: Path = Path(tempfile.gettempdir()) / "dspy-flywheel-collector"

    accept_unlabeled_success: bool = False
    min_score: float | None = Field(default=None, ge=0, le=1)
    max_field_chars: int = Field(default=20_000, ge=1)
    drop_duplicates: bool = True
    pending_ttl_s: float = Field(default=3600.0, gt=0)
    retention_max_age_days: float | None = Field(default=None, gt=0)
    retention_max_count: int | None = Field(default=None, ge=1)

    encryption: EncryptionSettings = Field(default_factory=EncryptionSettings)

    def source(self) -> tuple[str, str]:
        """The topics the collector reads: executions, feedback."""
        return self.topics.executions, self.topics.feedback

    def default_policy(self) -> WorkerPolicy:
        """The settings named like the policy's fields."""
        return WorkerPolicy(**{c: getattr(self, c) for c in POLICY_COLUMNS})
