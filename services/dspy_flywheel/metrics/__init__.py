"""Metrics of every service and of the SDK (OpenTelemetry metrics API, one catalog).

``catalog`` declares each instrument once; ``kafka`` (consumer lag, consumed, DLQ), ``sdk``,
``collector``, ``trigger``, ``optimizer`` and ``http`` hold them by source and import only the
OpenTelemetry API. ``setup`` installs the SDK with a Prometheus ``/metrics`` endpoint and OTLP
export; it loads lazily, so library code importing a source never pulls in the SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from dspy_flywheel._lazy import lazy_exports
from dspy_flywheel.metrics.catalog import CATALOG, Described

if TYPE_CHECKING:
    from dspy_flywheel.metrics.setup import force_flush, setup_metrics, setup_telemetry

SOURCES = ("sdk", "kafka", "collector", "trigger", "optimizer", "http")


def all_instruments() -> list[Described]:
    """Every instrument of every source (importing a source declares its instruments)."""
    for name in SOURCES:
        importlib.import_module(f"dspy_flywheel.metrics.{name}")
    return list(CATALOG)


_SETUP = "dspy_flywheel.metrics.setup"
__getattr__, __dir__ = lazy_exports(
    __name__, {"force_flush": _SETUP, "setup_metrics": _SETUP, "setup_telemetry": _SETUP}, globals()
)

__all__ = [
    "CATALOG", "Described", "all_instruments", "force_flush", "setup_metrics", "setup_telemetry",
]  # fmt: skip
