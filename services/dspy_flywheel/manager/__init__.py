"""Optimization Manager: schedule, run in batches, watch, cancel and measure optimizations.

Python API ``OptimizationManager``, HTTP API (``python -m dspy_flywheel.manager``, routes under
``/api/v1``) and the ``flywheel jobs ...`` CLI. It reads PostgreSQL (jobs, programs, acks,
examples) and writes optimization requests to Kafka; cancellation is a flag in the job row that
the owning optimizer acts on.
"""

from dspy_flywheel.manager.core import OptimizationManager, OptimizationStatus
from dspy_flywheel.manager.metrics import PerformanceMetrics
from dspy_flywheel.manager.settings import ManagerSettings

__all__ = ["ManagerSettings", "OptimizationManager", "OptimizationStatus", "PerformanceMetrics"]
