"""Worker SDK settings (env prefix ``FLYWHEEL_WORKER_``) on top of the shared Kafka settings.

    FLYWHEEL_WORKER_SPOOL_DIR          default $FLYWHEEL_HOME/spool/<worker_id>
    FLYWHEEL_WORKER_EMIT=true          false: no events at all (calls still work)
    FLYWHEEL_WORKER_RELOAD=true        false: never consume program-updated
    FLYWHEEL_WORKER_QUEUE_MAX=10000    in-memory events before spilling to the spool
    FLYWHEEL_WORKER_LINGER_MS=500      events gather this long, then leave as one batch (fewer
                                       wakeups of the IO thread: less work beside the calls)
    FLYWHEEL_WORKER_SPOOL_MAX_BYTES    on-disk limit (> 0); beyond it events are dropped and counted
    FLYWHEEL_WORKER_METRICS_PORT       serve the SDK's metrics on /metrics there (default: off)
    FLYWHEEL_WORKER_SPOOL_KEY          base64 32-byte key sealing the spool (AES-256-GCM); else the
                                       platform's FLYWHEEL_ENCRYPTION_KEYS if set, else a key file:
    FLYWHEEL_WORKER_SPOOL_KEY_FILE     default $FLYWHEEL_HOME/keys/<worker_id>.spool.key (0600)

Every size, count and duration must be positive (zero where it means "none"); anything else is
refused when the settings are read, with the variable's name in the message.

``FLYWHEEL_HOME`` defaults to ``~/.cache/dspy-flywheel`` (the same as ``ops/``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from dspy_flywheel.settings import FlywheelSettings

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def flywheel_home() -> Path:
    return Path(os.environ.get("FLYWHEEL_HOME") or Path.home() / ".cache" / "dspy-flywheel")


class WorkerSettings(FlywheelSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLYWHEEL_WORKER_", extra="ignore", populate_by_name=True
    )

    emit: bool = True
    reload: bool = True
    spool_dir: Path | None = None
    spool_key: SecretStr | None = None
    spool_key_file: Path | None = None
    queue_max: int = Field(default=10_000, ge=1)
    spool_max_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    spool_segment_bytes: int = Field(default=8 * 1024 * 1024, ge=4096)
    fsync_interval_ms: int = Field(default=200, ge=0)
    linger_ms: int = Field(default=500, ge=0)  # how long events gather before a batch goes out
    batch_max: int = Field(default=2_000, ge=1)
    # How long the producer keeps retrying an unacknowledged batch (idempotent: the broker drops
    # a retry it already has). Longer means fewer ambiguous re-sends after a long outage;
    # new events do not wait for it (they go to the spool after suspect_after_ms).
    request_timeout_ms: int = Field(default=120_000, ge=1)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    suspect_after_ms: int = Field(default=1_000, ge=1)
    reconnect_backoff_max_s: float = Field(default=5.0, gt=0)
    close_timeout_s: float = Field(default=10.0, ge=0)
    feedback_cache_size: int = Field(default=10_000, ge=0)
    history_size: int = Field(default=5, ge=1)
    catch_up_wait_s: float = Field(default=0.0, ge=0)
    ensure_topics: bool = True

    def spool_path(self, worker_id: str) -> Path:
        if self.spool_dir is not None:
            return self.spool_dir
        return flywheel_home() / "spool" / _UNSAFE.sub("_", worker_id)

    def spool_key_path(self, worker_id: str) -> Path:
        if self.spool_key_file is not None:
            return self.spool_key_file
        return flywheel_home() / "keys" / f"{_UNSAFE.sub('_', worker_id)}.spool.key"
