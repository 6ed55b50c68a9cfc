"""Optimizer service settings (env prefix ``FLYWHEEL_OPTIMIZER_``).

FLYWHEEL_OPTIMIZER_MIN_IMPROVEMENT=0.0   margin: publish only if the gain is proven above it
FLYWHEEL_OPTIMIZER_GATE_CONFIDENCE=0.95  confidence of the holdout gate (rollout/paired.py)
FLYWHEEL_OPTIMIZER_MIN_HOLDOUT=30        refuse (before compiling) when the holdout is smaller
FLYWHEEL_OPTIMIZER_ROLLOUT=canary        canary: a published version starts as a candidate on a
                                         share of the traffic (the rollout service decides);
                                         immediate: every instance serves it at once
FLYWHEEL_OPTIMIZER_MIN_EXAMPLES=20       refuse smaller datasets
FLYWHEEL_OPTIMIZER_DATASET_WAIT_S=60     wait this long for enough examples for the gate first
FLYWHEEL_OPTIMIZER_WALL_TIME_S=1800      per job; the compile child is killed after it
FLYWHEEL_OPTIMIZER_MEMORY_MB=6144        RLIMIT_AS of the compile child
FLYWHEEL_OPTIMIZER_MAX_LM_CALLS=5000     LM call budget per job (empty = none)
FLYWHEEL_OPTIMIZER_MAX_TOKENS=           token budget per job (empty = none)
FLYWHEEL_OPTIMIZER_MAX_PROGRAM_BYTES=1000000  largest program state published (one bus message)
FLYWHEEL_OPTIMIZER_LM_REF=               'module:factory' for the child's LM (default build_lm)
FLYWHEEL_OPTIMIZER_NUM_THREADS=          DSPy threads of a job (default: FLYWHEEL_LM_SLOTS with
                                         the shared embedded server, else 1)
FLYWHEEL_OPTIMIZER_ALLOWED_REFS=         program/metric refs a job may name besides the ones its
                                         worker registered: 'pkg.mod:attr,pkg.other:*'
                                         (see dspy_flywheel.contracts.refs; the manager and
                                         the CLI read the same variable)
FLYWHEEL_OPTIMIZER_DEFAULT_PROGRAM_REF=  for requests that name no program_ref (trusted)
FLYWHEEL_OPTIMIZER_REUSE_SERVED=true     the gate scores the current program on a holdout
                                         example from the answer that version served live
                                         (stored with the example) instead of re-asking the LM;
                                         turn it off when jobs run another LM than the workers
"""

from __future__ import annotations

import math
import os
import secrets
import socket
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from dspy_flywheel.rollout.paired import GateConfig
from dspy_flywheel.settings import FlywheelSettings


def _lm_slots() -> int:
    """DSPy threads of a job: as many as the shared LM server runs calls at once (else 1)."""
    from dspy_flywheel.lm.settings import LMSettings

    lm = LMSettings()
    return lm.slots if lm.is_shared else 1


def _instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class OptimizerSettings(FlywheelSettings):
    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_OPTIMIZER_", extra="ignore")

    metrics_port: int | None = 9466  # Prometheus /metrics; 0: off

    group_id: str = "flywheel-optimizer"
    acks_group_id: str = "flywheel-optimizer-acks"
    updates_group_id: str = "flywheel-optimizer-updates"  # checks program-updated (owns its DLQ)
    instance_id: str = Field(default_factory=_instance_id)

    # gate and data
    min_improvement: float = 0.0
    gate_confidence: float = 0.95
    min_holdout: int = 30
    rollout: Literal["canary", "immediate"] = "canary"
    min_examples: int = 20
    dataset_wait_s: float = 60.0
    max_examples: int | None = 2000
    labeled_only: bool = True
    split_seed: int = 13
    train_fraction: float = 0.6
    val_fraction: float = 0.2

    # limits of one job
    wall_time_s: float = 1800.0
    memory_mb: int | None = 6144
    max_lm_calls: int | None = 5000
    max_tokens: int | None = None
    # a version is published as one Kafka message: Kafka's and aiokafka's default limit is
    # 1 MiB, and the event's other fields need some room (an over-size event would stay in the
    # outbox, retried forever, ahead of every later one); raise both limits together
    max_program_bytes: int = 1_000_000
    num_threads: int = Field(default_factory=_lm_slots, ge=1)
    max_concurrent_jobs: int = 1

    # what the child builds
    lm_ref: str | None = None
    default_program_ref: str | None = None
    child_env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = None

    # liveness and reporting
    heartbeat_s: float = 2.0
    stale_after_s: float = 30.0
    progress_interval_s: float = 1.0
    poll_interval_s: float = 2.0
    report_interval_s: float = 0.5
    # score the current program on a holdout example from the answer it gave live, when that
    # version served it, instead of asking the LM again (the job's LM must be the workers')
    reuse_served: bool = True

    @model_validator(mode="after")
    def _valid_gate(self) -> OptimizerSettings:
        self.gate()  # raises ValueError (a settings error at startup) for a bad combination
        return self

    def gate(self) -> GateConfig:
        """The holdout gate's confidence, margin and minimum holdout size."""
        return GateConfig(self.gate_confidence, self.min_improvement, self.min_holdout)

    def examples_for_holdout(self, holdout: int) -> int:
        """About how many labeled examples give a holdout of ``holdout`` at this split."""
        return math.ceil(holdout / max(1e-9, 1.0 - self.train_fraction - self.val_fraction))

    def examples_wanted(self) -> int:
        """What a job waits for (up to ``dataset_wait_s``): enough for the gate's holdout."""
        return max(self.min_examples, self.examples_for_holdout(self.min_holdout))
