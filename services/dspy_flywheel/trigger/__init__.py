"""Trigger service: decides when a worker gets optimized.

Per worker it keeps rolling accuracy over labeled executions, applies the policy from the
compacted ``trigger-config`` topic (performance, periodic, manual) with storm guards, and emits
``OptimizationRequested``. Run it with ``python -m dspy_flywheel.trigger``; operate it with
``flywheel trigger set|show|clear`` and ``flywheel optimize WORKER``.
"""

from dspy_flywheel.trigger.config import TriggerPolicyConfig
from dspy_flywheel.trigger.config_topic import read_configs, write_config
from dspy_flywheel.trigger.requests import request_optimization
from dspy_flywheel.trigger.settings import TriggerSettings

__all__ = [
    "TriggerPolicyConfig",
    "TriggerSettings",
    "read_configs",
    "request_optimization",
    "write_config",
]
