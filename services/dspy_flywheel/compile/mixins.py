"""Per-predictor extras (retrieved demos, a cascade) mixed into a ``dspy.Predict``'s class."""

from __future__ import annotations

from typing import Any

_CLASSES: dict[tuple[type, type], type] = {}


def mix_in(predictor: Any, mixin: type) -> None:
    """Give ``predictor`` the behaviour of ``mixin`` (placed before its class; once)."""
    cls = type(predictor)
    if issubclass(cls, mixin):
        return
    if (mixin, cls) not in _CLASSES:
        name = f"{mixin.__name__.removesuffix('Mixin')}{cls.__name__}"
        _CLASSES[mixin, cls] = type(name, (mixin, cls), {})
    predictor.__class__ = _CLASSES[mixin, cls]
