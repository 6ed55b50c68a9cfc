"""Metrics of every service and of the SDK (OpenTelemetry metrics API, one catalog).

``catalog`` declares each instrument once; ``kafka`` (consumer lag, consumed, DLQ), ``sdk``,
``collector``, ``trigger``, ``optimizer`` and ``http`` hold them by source and import only the
OpenTelemetry API. ``setup`` installs the SDK with a Prometheus ``/metrics`` endpoint and OTLP
export; it loads lazily, so library code importing a source never pulls in the SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dspy_flywheel._lazy import lazy_exports

if TYPE_CHECKING:
    from dspy_flywheel.metrics.setup import force_flush, setup_metrics, setup_telemetry

_SETUP = "dspy_flywheel.metrics.setup"
__getattr__, __dir__ = lazy_exports(
    __name__, {"force_flush": _SETUP, "setup_metrics": _SETUP, "setup_telemetry": _SETUP}, globals()
)

__all__ = ["force_flush", "setup_metrics", "setup_telemetry"]
