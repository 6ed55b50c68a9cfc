"""Every instrument of dspy-flywheel, declared once: name, kind, unit, description.

Instruments come from the OpenTelemetry *API* (no SDK needed to import this); the service entry
points install the SDK (``dspy_flywheel.metrics.setup``). Names follow the OpenTelemetry semantic
conventions where one exists (``messaging.*``, ``http.server.*``), ``flywheel.*`` otherwise.
``CATALOG`` lists them all (the README table is checked against it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

Callback = Callable[[CallbackOptions], Iterable[Observation]]


@dataclass(frozen=True)
class Described:
    name: str
    kind: str  # counter | histogram | gauge (observable ones included)
    unit: str
    description: str
    attributes: tuple[str, ...]
    source: str  # the service (or SDK) that reports it


CATALOG: list[Described] = []


class Meter:
    """One meter per source; each ``counter``/``histogram``/... call is listed in ``CATALOG``."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._meter = metrics.get_meter(f"dspy_flywheel.{source}")

    def _describe(
        self, name: str, kind: str, unit: str, description: str, attributes: Sequence[str]
    ) -> None:
        CATALOG.append(Described(name, kind, unit, description, tuple(attributes), self._source))

    def counter(
        self, name: str, unit: str, description: str, attributes: Sequence[str] = ()
    ) -> metrics.Counter:
        self._describe(name, "counter", unit, description, attributes)
        return self._meter.create_counter(name, unit=unit, description=description)

    def histogram(
        self, name: str, unit: str, description: str, attributes: Sequence[str] = ()
    ) -> metrics.Histogram:
        self._describe(name, "histogram", unit, description, attributes)
        return self._meter.create_histogram(name, unit=unit, description=description)

    def observable(
        self,
        kind: Literal["counter", "gauge"],
        name: str,
        unit: str,
        description: str,
        callback: Callback,
        attributes: Sequence[str] = (),
    ) -> Any:
        """An instrument read by ``callback`` when a reader collects (nothing on the hot path)."""
        self._describe(name, kind, unit, description, attributes)
        create = (
            self._meter.create_observable_counter
            if kind == "counter"
            else self._meter.create_observable_gauge
        )
        return create(name, [callback], unit, description)
