"""Loading a saved or published program state, with each predictor's extras.

Every loader goes through ``load_program_state``, so a predictor's retrieval index
(``compile.retrieval``) and cascade (``compile.cascade``) travel with the program version, and a
hot reload swaps them with the demos (or clears them when the new state has none).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from dspy_flywheel.compile import cascade, retrieval

# state key -> (rebuild from its saved entry, attach to a predictor; None clears)
_EXTRAS: Final[dict[str, tuple[Callable[[Any], Any], Callable[[Any, Any], None]]]] = {
    retrieval.STATE_KEY: (retrieval.BM25Index.from_state, retrieval.attach),
    cascade.STATE_KEY: (cascade.Cascade.from_state, cascade.attach),
}


def _plain(entry: Any) -> Any:
    return (
        {k: v for k, v in entry.items() if k not in _EXTRAS} if isinstance(entry, dict) else entry
    )


def load_program_state(program: Any, state: Mapping[str, Any]) -> Any:
    """``program.load_state(state)``, then each predictor's saved extras attached (or cleared)."""
    flat = any(p is program for _, p in program.named_predictors())
    program.load_state(_plain(state) if flat else {n: _plain(e) for n, e in state.items()})
    for name, predictor in program.named_predictors():
        entry = state if predictor is program else state.get(name)  # a bare Predict's is flat
        for key, (rebuild, attach) in _EXTRAS.items():
            saved = entry.get(key) if isinstance(entry, dict) else None
            attach(predictor, rebuild(saved) if saved else None)
    return program
