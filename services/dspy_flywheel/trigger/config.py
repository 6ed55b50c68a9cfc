"""A worker's trigger policy as read from (and written to) the compacted ``trigger-config`` topic.

The record is the ``TriggerConfig`` event; ``policy`` is ``manual``, ``periodic`` or
``performance`` (a comma-separated combination such as ``performance,periodic`` is accepted).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dspy_flywheel.compile.catalog import DEFAULT_OPTIMIZER, canonical_name
from dspy_flywheel.compile.errors import OptimizerConfigError
from dspy_flywheel.contracts.events import TriggerConfig, field_names, now_ms
from dspy_flywheel.contracts.policies import POLICIES, split_policies
from dspy_flywheel.contracts.refs import check_ref_syntax
from dspy_flywheel.contracts.validate import (
    MAX_NAME_CHARS,
    InvalidInput,
    check_id,
    check_int,
    check_number,
    check_text,
    check_timestamp_ms,
    parse_json,
)
from dspy_flywheel.trigger.cron import CronSchedule

MAX_SECONDS = 10 * 366 * 24 * 3600  # ten years: longer waits are typos
MAX_COUNT = 1_000_000_000  # an Avro int holds 2**31 - 1
MAX_WINDOW = 100_000  # observations kept in memory and in the state row per worker


class ConfigError(ValueError):
    """A trigger config value is invalid."""


@dataclass(frozen=True)
class InvalidConfig:
    """A config record that was skipped when read: where it is, whose (if its key says), why."""

    source: str  # topic:partition:offset
    worker_id: str | None
    error: str


def parse_policies(policy: str) -> frozenset[str]:
    names = frozenset(split_policies(policy))
    unknown = names - set(POLICIES)
    if not names or unknown:
        raise ConfigError(f"policy must be one or more of {sorted(POLICIES)}, got {policy!r}")
    return names


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerPolicyConfig(TriggerConfig):
    """A ``TriggerConfig`` event, validated, with defaults for writing one by hand."""

    policy: str = "performance"
    optimizer: str = DEFAULT_OPTIMIZER
    timestamp_ms: int = field(default_factory=now_ms)

    def __post_init__(self) -> None:
        """Every field in range, the cron satisfiable, the optimizer known: a config that is
        refused here is refused when written (CLI, API) and skipped when read."""
        try:
            self._check()
        except (InvalidInput, OptimizerConfigError) as exc:
            raise ConfigError(str(exc)) from None
        except ValueError as exc:  # CronError, int() of an absurd cron number
            raise ConfigError(f"cron: {exc}") from None

    def _check(self) -> None:
        check_id(self.worker_id, "worker_id")
        for name in ("policy", "updated_by", "worker_type"):
            check_text(getattr(self, name), name, MAX_NAME_CHARS)
        parse_policies(self.policy)
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"enabled must be true or false, got {self.enabled!r}")
        check_number(self.threshold, "threshold", 0.0, 1.0)
        check_int(self.window_size, "window_size", 1, MAX_WINDOW)
        check_int(self.min_examples, "min_examples", 1, MAX_COUNT)
        check_int(self.min_new_examples, "min_new_examples", 0, MAX_COUNT)
        check_int(self.cooldown_seconds, "cooldown_seconds", 0, MAX_SECONDS)
        for name in ("window_seconds", "interval_seconds"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), name, 1, MAX_SECONDS)
        check_timestamp_ms(self.timestamp_ms)
        canonical_name(check_text(self.optimizer, "optimizer", MAX_NAME_CHARS))
        for name in ("program_ref", "metric_ref"):
            if getattr(self, name) is not None:
                check_ref_syntax(getattr(self, name), name)
        if self.cron is not None:
            CronSchedule.parse(check_text(self.cron, "cron", MAX_NAME_CHARS))
        params = parse_json(self.optimizer_params_json, "optimizer_params_json")
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
    def of(cls, event: TriggerConfig) -> TriggerPolicyConfig:
        """``event`` validated (ConfigError / CronError / ValueError when it is not valid)."""
        return event if isinstance(event, cls) else cls.from_record(event.to_record())

    def merged(self, changes: Mapping[str, Any]) -> TriggerPolicyConfig:
        """A copy with ``changes`` applied (keys not given keep their value); stamps the time."""
        unknown = set(changes) - set(field_names(TriggerConfig))
        if unknown:
            raise ConfigError(f"unknown trigger config fields: {sorted(unknown)}")
        return replace(self, **{**changes, "timestamp_ms": now_ms()})


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
