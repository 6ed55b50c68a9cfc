"""A worker's trigger policy as read from (and written to) the compacted ``trigger-config`` topic.

The record is the ``TriggerConfig`` event; ``policy`` is ``manual``, ``periodic`` or
``performance`` (a comma-separated combination such as ``performance,periodic`` is accepted).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from dspy_flywheel.contracts.policies import POLICIES, split_policies
from dspy_flywheel.trigger.cron import CronSchedule


class ConfigError(ValueError):
    """A trigger config value is invalid."""


def parse_policies(policy: str) -> frozenset[str]:
    names = frozenset(split_policies(policy))
    unknown = names - set(POLICIES)
    if not names or unknown:
        raise ConfigError(f"policy must be one or more of {sorted(POLICIES)}, got {policy!r}")
    return names


@dataclass(frozen=True)
class TriggerPolicyConfig:
    worker_id: str
    policy: str = "performance"
    enabled: bool = True
    threshold: float = 0.8
    window_size: int = 50
    window_seconds: int | None = None
    min_examples: int = 20
    min_new_examples: int = 0
    cooldown_seconds: int = 600
    interval_seconds: int | None = None
    cron: str | None = None
    optimizer: str = "BootstrapFewShot"
    optimizer_params_json: str = "{}"
    updated_by: str = "system"
    worker_type: str = ""
    program_ref: str | None = None
    metric_ref: str | None = None
    timestamp_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    def __post_init__(self) -> None:
        parse_policies(self.policy)
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.window_size < 1:
            raise ConfigError("window_size must be >= 1")
        if self.min_examples < 1 or self.min_new_examples < 0 or self.cooldown_seconds < 0:
            raise ConfigError("min_examples >= 1, min_new_examples >= 0, cooldown_seconds >= 0")
        if self.window_seconds is not None and self.window_seconds < 1:
            raise ConfigError("window_seconds must be >= 1 when set")
        if self.interval_seconds is not None and self.interval_seconds < 1:
            raise ConfigError("interval_seconds must be >= 1 when set")
        if self.cron is not None:
            CronSchedule.parse(self.cron)
        params = json.loads(self.optimizer_params_json)
        if not isinstance(params, dict):
            raise ConfigError("optimizer_params_json must be a JSON object")

    @property
    def policies(self) -> frozenset[str]:
        return parse_policies(self.policy)

    @property
    def optimizer_params(self) -> dict[str, Any]:
        params: dict[str, Any] = json.loads(self.optimizer_params_json)
        return params

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TriggerPolicyConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    def merged(self, changes: Mapping[str, Any]) -> TriggerPolicyConfig:
        """A copy with ``changes`` applied (keys not given keep their value); stamps the time."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ConfigError(f"unknown trigger config fields: {sorted(unknown)}")
        return replace(self, **{**changes, "timestamp_ms": int(time.time() * 1000)})


def parse_param(text: str) -> tuple[str, Any]:
    """``k=v`` from the command line; ``v`` is JSON when it parses (``3``, ``true``), else text."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"expected key=value, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value
