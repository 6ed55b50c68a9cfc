"""Metrics of every service and of the SDK (OpenTelemetry metrics API, one catalog).

``catalog`` declares each instrument once; ``kafka`` (consumer lag, consumed, DLQ), ``sdk``,
``collector``, ``trigger``, ``optimizer`` and ``http`` hold them by source; ``setup`` installs
the SDK with a Prometheus ``/metrics`` endpoint and OTLP export.
"""

import importlib

from dspy_flywheel.metrics.catalog import CATALOG, Described
from dspy_flywheel.metrics.setup import force_flush, setup_metrics

SOURCES = ("sdk", "kafka", "collector", "trigger", "optimizer", "http")


def all_instruments() -> list[Described]:
    """Every instrument of every source (importing a source declares its instruments)."""
    for name in SOURCES:
        importlib.import_module(f"dspy_flywheel.metrics.{name}")
    return list(CATALOG)


__all__ = ["CATALOG", "Described", "all_instruments", "force_flush", "setup_metrics"]
