"""``@dspy_worker_optimized`` arguments, checked up front, and the TriggerConfig they become.

Policies (``optimization_trigger``; a comma-separated combination is accepted)::

    manual        only when someone asks (CLI, API)      no parameters of its own
    periodic      every interval_seconds, or on a cron   interval_seconds | cron
    performance   rolling accuracy below threshold       threshold, window_size, window_seconds

Every policy also takes: enabled, min_examples, min_new_examples, cooldown_seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dspy_flywheel.compile.catalog import MIPRO_AUTO, setting_names
from dspy_flywheel.compile.catalog import OPTIMIZER_CLASSES as OPTIMIZERS
from dspy_flywheel.contracts.events import TriggerConfig
from dspy_flywheel.contracts.policies import POLICIES, split_policies
from dspy_flywheel.sdk.errors import WorkerConfigError

_COMMON = ("enabled", "min_examples", "min_new_examples", "cooldown_seconds")
_BY_POLICY = {
    "manual": (),
    "periodic": ("interval_seconds", "cron"),
    "performance": ("threshold", "window_size", "window_seconds"),
}
TRIGGER_PARAMS = frozenset(_COMMON) | {p for ps in _BY_POLICY.values() for p in ps}


@dataclass(frozen=True)
class OptimizationConfig:
    """What a worker asks of the optimization side (validated on construction)."""

    optimizer: str = "MIPROv2"
    trigger: str = "manual"
    trigger_params: dict[str, Any] = field(default_factory=dict)
    optimizer_params: dict[str, Any] = field(default_factory=dict)
    auto_collect_training: bool = True

    def __post_init__(self) -> None:
        check_optimizer(self.optimizer, self.optimizer_params)
        check_trigger(self.trigger, self.trigger_params)

    @property
    def policies(self) -> list[str]:
        return split_policies(self.trigger)

    def trigger_config(
        self,
        worker_id: str,
        worker_type: str,
        program_ref: str | None,
        metric_ref: str | None,
        timestamp_ms: int,
    ) -> TriggerConfig:
        """The ``TriggerConfig`` event (schema defaults where a parameter was not given)."""
        given = dict(self.trigger_params)  # checked; the rest keeps the schema's defaults
        if "threshold" in given:
            given["threshold"] = float(given["threshold"])
        return TriggerConfig(
            worker_id=worker_id,
            policy=",".join(self.policies),
            optimizer=self.optimizer,
            optimizer_params_json=json.dumps(self.optimizer_params, sort_keys=True),
            updated_by="sdk",
            worker_type=worker_type,
            program_ref=program_ref,
            metric_ref=metric_ref,
            timestamp_ms=timestamp_ms,
            **given,
        )


def check_trigger(trigger: str, params: dict[str, Any]) -> None:
    if not isinstance(trigger, str) or not split_policies(trigger):
        raise WorkerConfigError(
            f"optimization_trigger must be one of {list(POLICIES)}, got {trigger!r}"
        )
    policies = split_policies(trigger)
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise WorkerConfigError(
            f"unknown optimization_trigger {unknown[0]!r}; accepted: {list(POLICIES)} "
            "(or a comma-separated combination such as 'performance,periodic')"
        )
    allowed = set(_COMMON).union(*(_BY_POLICY[p] for p in policies))
    for name in params:
        if name not in allowed:
            owner = [p for p, names in _BY_POLICY.items() if name in names]
            hint = f" (it belongs to optimization_trigger={owner[0]!r})" if owner else ""
            raise WorkerConfigError(
                f"{name!r} does not apply to optimization_trigger={trigger!r}{hint}; "
                f"accepted here: {sorted(allowed)}"
            )
    _check_range(params, "threshold", 0.0, 1.0, number=True)
    for name, low in (
        ("window_size", 1),
        ("window_seconds", 1),
        ("min_examples", 1),
        ("min_new_examples", 0),
        ("cooldown_seconds", 0),
        ("interval_seconds", 1),
    ):
        _check_range(params, name, low, None)
    if "enabled" in params and not isinstance(params["enabled"], bool):
        raise WorkerConfigError("enabled must be True or False")
    cron = params.get("cron")
    if cron is not None and (not isinstance(cron, str) or len(cron.split()) != 5):
        raise WorkerConfigError(f"cron must be a 5-field expression like '0 3 * * *', got {cron!r}")
    if "periodic" in policies and params.get("interval_seconds") is None and cron is None:
        raise WorkerConfigError("optimization_trigger='periodic' needs interval_seconds or cron")


def _check_range(
    params: dict[str, Any], name: str, low: float, high: float | None, *, number: bool = False
) -> None:
    if params.get(name) is None:
        return
    value = params[name]
    wrong_kind = not isinstance(value, (int, float)) or (not number and isinstance(value, float))
    if isinstance(value, bool) or wrong_kind:
        raise WorkerConfigError(
            f"{name} must be {'a number' if number else 'an integer'}, got {value!r}"
        )
    amount = float(value)
    if amount < low or (high is not None and amount > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise WorkerConfigError(f"{name} must be {bound}, got {value!r}")


def check_optimizer(optimizer: str, params: dict[str, Any]) -> None:
    if optimizer not in OPTIMIZERS:
        raise WorkerConfigError(f"unknown optimizer {optimizer!r}; accepted: {list(OPTIMIZERS)}")
    accepted = setting_names(optimizer)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise WorkerConfigError(
            f"{optimizer} does not take {unknown}; accepted: {sorted(accepted)} "
            f"(trigger parameters: {sorted(TRIGGER_PARAMS)})"
        )
    if optimizer == "MIPROv2" and params.get("auto") not in (None, *MIPRO_AUTO):
        raise WorkerConfigError(
            f"MIPROv2 auto must be one of {list(MIPRO_AUTO)}, got {params['auto']!r}"
        )
    try:
        json.dumps(params)
    except (TypeError, ValueError) as exc:
        raise WorkerConfigError(f"optimizer parameters must be JSON values: {exc}") from exc
