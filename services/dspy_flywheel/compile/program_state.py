"""Loading a saved or published program state, with each predictor's extras.

Every loader goes through ``load_program_state``, so a predictor's retrieval index
(``compile.retrieval``) and cascade (``compile.cascade``) travel with the program version, and a
hot reload swaps them with the demos (or clears them when the new state has none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from dspy_flywheel.compile.cascade import CascadeMixin
from dspy_flywheel.compile.mixins import SavedExtra, attach
from dspy_flywheel.compile.retrieval import RetrievingMixin

_EXTRAS: Final[tuple[type[SavedExtra], ...]] = (RetrievingMixin, CascadeMixin)
_KEYS: Final = frozenset(extra.key for extra in _EXTRAS)


def _plain(entry: Any) -> Any:
    return {k: v for k, v in entry.items() if k not in _KEYS} if isinstance(entry, dict) else entry


def load_program_state(program: Any, state: Mapping[str, Any]) -> Any:
    """``program.load_state(state)``, then each predictor's saved extras attached (or cleared)."""
    flat = any(p is program for _, p in program.named_predictors())
    program.load_state(_plain(state) if flat else {n: _plain(e) for n, e in state.items()})
    for name, predictor in program.named_predictors():
        entry = state if predictor is program else state.get(name)  # a bare Predict's is flat
        for extra in _EXTRAS:
            saved = entry.get(extra.key) if isinstance(entry, dict) else None
            attach(predictor, extra, extra.rebuilt(saved, predictor.signature))
    return program
