"""Trigger service: decides when a worker gets optimized.

Per worker it keeps rolling accuracy over labeled executions, applies the policy from the
compacted ``trigger-config`` topic (performance, periodic, manual) with storm guards, and emits
``OptimizationRequested``. Run it with ``python -m dspy_flywheel.trigger``; operate it with
``flywheel trigger set|show|clear`` and ``flywheel optimize WORKER``.

The names below load lazily: ``python -m dspy_flywheel.trigger`` imports this package first,
and its stop-signal handler should be in place before Kafka clients are imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dspy_flywheel._lazy import lazy_exports

if TYPE_CHECKING:
    from dspy_flywheel.trigger.config import TriggerPolicyConfig
    from dspy_flywheel.trigger.config_topic import read_configs, write_config
    from dspy_flywheel.trigger.requests import request_optimization
    from dspy_flywheel.trigger.settings import TriggerSettings

_EXPORTS = {
    "TriggerPolicyConfig": "dspy_flywheel.trigger.config",
    "TriggerSettings": "dspy_flywheel.trigger.settings",
    "read_configs": "dspy_flywheel.trigger.config_topic",
    "request_optimization": "dspy_flywheel.trigger.requests",
    "write_config": "dspy_flywheel.trigger.config_topic",
}

__all__ = [
    "TriggerPolicyConfig",
    "TriggerSettings",
    "read_configs",
    "request_optimization",
    "write_config",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
