"""Per-predictor extras (retrieved demos, a cascade) mixed into a ``dspy.Predict``'s class.

Each extra is a ``SavedExtra`` mixin: it names the attribute that holds it (also its key in the
predictor's saved state) and the type that saves and rebuilds it, so ``dump_state`` and
``load_state`` carry every extra a predictor has, however many are mixed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, Self

_CLASSES: dict[tuple[type, type], type] = {}


class Saved(Protocol):
    """What an extra is: it saves to a JSON-able dict and is rebuilt from one."""

    def to_state(self) -> dict[str, Any]: ...

    def check_against(self, signature: Any) -> None:
        """Raises ValueError unless the extra fits the predictor's ``signature``."""

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self: ...


class SavedExtra:
    """A mixin whose extra lives in attribute ``key`` and in the saved state under ``key``."""

    key: ClassVar[str]
    saved_as: ClassVar[type[Saved]]

    @classmethod
    def extras(cls) -> list[type[SavedExtra]]:
        """The extras mixed into ``cls``, outermost first."""
        return [k for k in cls.__mro__ if issubclass(k, SavedExtra) and "key" in vars(k)]

    @classmethod
    def rebuilt(cls, entry: Any, signature: Any) -> Saved | None:
        """The extra saved in ``entry`` (None when there is none), checked against the
        predictor's ``signature``; raises ValueError when it is not a usable one."""
        if not entry:
            return None
        value = cls.saved_as.from_state(entry)
        value.check_against(signature)
        return value

    def dump_state(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        state: dict[str, Any] = super().dump_state(*args, **kwargs)  # type: ignore[misc]
        for extra in self.extras():
            value = getattr(self, extra.key)
            if value is not None:
                state[extra.key] = value.to_state()
        return state

    def load_state(self, state: dict[str, Any], **kwargs: Any) -> Any:
        state = dict(state)
        saved = {extra: state.pop(extra.key, None) for extra in self.extras()}
        super().load_state(state, **kwargs)  # type: ignore[misc]  # the Predict's
        for extra, entry in saved.items():
            setattr(self, extra.key, extra.rebuilt(entry, self.signature))  # type: ignore[attr-defined]
        return self


def mix_in(predictor: Any, mixin: type) -> None:
    """Give ``predictor`` the behaviour of ``mixin`` (placed before its class; once)."""
    cls = type(predictor)
    if issubclass(cls, mixin):
        return
    if (mixin, cls) not in _CLASSES:
        name = f"{mixin.__name__.removesuffix('Mixin')}{cls.__name__}"
        _CLASSES[mixin, cls] = type(name, (mixin, cls), {})
    predictor.__class__ = _CLASSES[mixin, cls]


def attach(predictor: Any, extra: type[SavedExtra], value: Saved | None) -> None:
    """Give ``predictor`` (a ``dspy.Predict``) the ``extra`` holding ``value`` (None: off)."""
    if value is None and not isinstance(predictor, extra):
        return
    mix_in(predictor, extra)
    setattr(predictor, extra.key, value)
