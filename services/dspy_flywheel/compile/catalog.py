"""The DSPy optimizers the platform offers, and how to build one from a name and parameters.

Names are matched case-insensitively; ``MIPROv2`` means ``auto="light"`` unless ``auto`` is given,
and ``MIPROv2-light|medium|heavy`` fix the mode. Keyword arguments go to the optimizer's
``__init__`` or, when only its ``compile`` takes them (``num_trials``, ``minibatch_size``...), to
``compile``. Anything else is refused with the list of accepted names.

Besides DSPy's own, the catalog offers the platform's strategies (``compile.strategies``):
``StratifiedFewShot``, ``RetrievalFewShot`` and ``RetrievalCascade``, which learn from labeled
examples without LM calls at compile time. ``DEFAULT_OPTIMIZER`` is what
``@dspy_worker_optimized``, the trigger and the manager use when nothing names one:
RetrievalCascade, the best strategy measured on the frozen suite (README, "Quality suite"). It
adapts to the task's shape by itself: one demo per class when the output is a class, two fixed
demos otherwise, plus the nearest training rows; when the output is a class, a label model
learned from the rows answers the calls it is sure of before the LM does.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Final

from dspy_flywheel.compile.errors import OptimizerConfigError


@dataclass(frozen=True)
class CatalogEntry:
    class_name: str
    preset: dict[str, Any] = field(default_factory=dict)
    uses_valset: bool = False
    needs_finetunable_lm: bool = False
    # Platform settings beside the class's own (popped before the class sees them).
    extras: frozenset[str] = frozenset()


MIPRO_AUTO: Final = ("light", "medium", "heavy")
CATALOG: Final[dict[str, CatalogEntry]] = {
    "BootstrapFewShot": CatalogEntry("BootstrapFewShot"),
    "BootstrapFewShotWithRandomSearch": CatalogEntry(
        "BootstrapFewShotWithRandomSearch", uses_valset=True
    ),
    "MIPROv2": CatalogEntry("MIPROv2", {"auto": MIPRO_AUTO[0]}, uses_valset=True),
    **{
        f"MIPROv2-{mode}": CatalogEntry("MIPROv2", {"auto": mode}, uses_valset=True)
        for mode in MIPRO_AUTO
    },
    # The student learns zero-shot (exclude_demos) from the traces of a teacher that shows
    # labeled demos (``teacher``: a prompt strategy, or "none" to bootstrap from the student).
    "BootstrapFinetune": CatalogEntry(
        "BootstrapFinetune",
        {"exclude_demos": True, "teacher": "StratifiedFewShot", "teacher_demos": 4},
        needs_finetunable_lm=True,
        extras=frozenset({"teacher", "teacher_demos"}),
    ),
    "StratifiedFewShot": CatalogEntry("StratifiedFewShot"),
    "RetrievalFewShot": CatalogEntry("RetrievalFewShot"),
    "RetrievalCascade": CatalogEntry("RetrievalCascade"),
}
DEFAULT_OPTIMIZER: Final = "RetrievalCascade"
# The DSPy optimizer classes behind the catalog, each once: what a worker may name.
OPTIMIZER_CLASSES: Final = tuple(dict.fromkeys(entry.class_name for entry in CATALOG.values()))
ALIASES: Final[dict[str, str]] = {
    "bootstrap": "BootstrapFewShot",
    "bootstraprs": "BootstrapFewShotWithRandomSearch",
    "randomsearch": "BootstrapFewShotWithRandomSearch",
    "mipro": "MIPROv2",
    "finetune": "BootstrapFinetune",
    "stratified": "StratifiedFewShot",
    "retrieval": "RetrievalFewShot",
    "knn": "RetrievalFewShot",
    "cascade": "RetrievalCascade",
}
# compile() parameters that are the data, not settings.
_COMPILE_DATA: Final = frozenset({"self", "student", "trainset", "teacher", "valset"})
_FIXED_PRESETS: Final = frozenset(f"MIPROv2-{mode}" for mode in MIPRO_AUTO)


@dataclass
class DSPyOptimizer:
    """A configured optimizer: the DSPy teleprompter plus what ``compile`` should receive."""

    name: str
    teleprompter: Any
    params: dict[str, Any]
    compile_kwargs: dict[str, Any]
    uses_valset: bool
    teacher: tuple[str, int] | None = None  # (prompt strategy, demos) that builds the teacher


def canonical_name(optimizer_type: str) -> str:
    """The catalog name for ``optimizer_type`` (case-insensitive, aliases allowed)."""
    by_lower = {name.lower(): name for name in CATALOG}
    key = optimizer_type.strip().lower()
    found = by_lower.get(key) or ALIASES.get(key.replace("_", "").replace("-", ""))
    if found is None:
        raise OptimizerConfigError(
            f"unknown optimizer {optimizer_type!r}; accepted: {', '.join(CATALOG)}"
            f" (aliases: {', '.join(sorted(ALIASES))})"
        )
    return found


def _param_names(func: Callable[..., Any]) -> list[str]:
    sig = inspect.signature(func)
    return [
        name
        for name, p in sig.parameters.items()
        if name not in _COMPILE_DATA and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def optimizer_class(class_name: str) -> Any:
    """The class behind a catalog entry: the platform's own strategies first, then DSPy's."""
    from dspy_flywheel.compile.strategies import STRATEGIES

    if class_name in STRATEGIES:
        return STRATEGIES[class_name]
    import dspy

    return getattr(dspy, class_name)


def setting_names(class_name: str) -> frozenset[str]:
    """What a worker may set for an optimizer class: its ``__init__`` and ``compile``
    parameters, less the data and the metric (the optimizer service supplies those)."""
    cls = optimizer_class(class_name)
    names = _param_names(cls.__init__) + _param_names(cls.compile)
    extras = {n for e in CATALOG.values() if e.class_name == class_name for n in e.extras}
    return frozenset(names) - {"metric", "program", "devset"} | extras


def split_kwargs(
    cls: Any, name: str, kwargs: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(init kwargs, compile kwargs); raises listing what is accepted for anything else."""
    init_names = _param_names(cls.__init__)
    compile_names = [n for n in _param_names(cls.compile) if n not in init_names]
    init_kw = {k: v for k, v in kwargs.items() if k in init_names}
    compile_kw = {k: v for k, v in kwargs.items() if k in compile_names}
    unknown = sorted(set(kwargs) - set(init_kw) - set(compile_kw))
    if unknown:
        raise OptimizerConfigError(
            f"{name} does not accept {', '.join(unknown)}; accepted parameters: "
            f"{', '.join(init_names)}"
            + (f"; compile parameters: {', '.join(compile_names)}" if compile_names else "")
        )
    return init_kw, compile_kw


def check_finetunable(lm: Any, name: str) -> None:
    """Refuse fine-tuning optimizers unless the LM's provider can fine-tune."""
    provider = getattr(lm, "provider", None)
    if lm is None:
        raise OptimizerConfigError(f"{name} needs an LM; configure one with dspy.configure(lm=...)")
    if not getattr(provider, "finetunable", False):
        model = getattr(lm, "model", type(lm).__name__)
        raise OptimizerConfigError(
            f"{name} cannot fine-tune {model!r}: its provider {type(provider).__name__} does not "
            "support fine-tuning (provider.finetunable is False). Give the LM a provider that can "
            "(e.g. dspy.LM(..., provider=dspy.OpenAIProvider())), or pick a prompt optimizer: "
            + ", ".join(n for n, e in CATALOG.items() if not e.needs_finetunable_lm)
        )


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def using_lm(lm: Any) -> AbstractContextManager[Any]:
    """``dspy.context(lm=lm)``, or nothing when ``lm`` is None (keep the configured LM)."""
    import dspy

    return dspy.context(lm=lm) if lm is not None else contextlib.nullcontext()


def create_optimizer(
    optimizer_type: str, *, metric: Callable[..., Any], lm: Any = None, **kwargs: Any
) -> DSPyOptimizer:
    """Build a configured DSPy optimizer. ``lm`` is checked for fine-tuning support if needed."""
    import dspy

    name = canonical_name(optimizer_type)
    entry = CATALOG[name]
    cls = optimizer_class(entry.class_name)
    if name in _FIXED_PRESETS and "auto" in kwargs and kwargs["auto"] != entry.preset["auto"]:
        raise OptimizerConfigError(
            f"{name} fixes auto={entry.preset['auto']!r}; use 'MIPROv2' with auto=... instead"
        )
    merged = {**entry.preset, **kwargs}
    teacher = _teacher(name, {k: merged[k] for k in entry.extras if k in merged})
    init_kw, compile_kw = split_kwargs(
        cls, name, {k: v for k, v in merged.items() if k not in entry.extras}
    )
    if entry.needs_finetunable_lm:
        check_finetunable(lm if lm is not None else dspy.settings.lm, name)
    if "metric" in _param_names(cls.__init__):
        init_kw.setdefault("metric", metric)
    try:
        with using_lm(lm):
            teleprompter = cls(**init_kw)
    except (TypeError, ValueError) as exc:
        raise OptimizerConfigError(f"bad parameters for {name}: {exc}") from exc
    params = {k: _jsonable(v) for k, v in merged.items()}
    return DSPyOptimizer(name, teleprompter, params, compile_kw, entry.uses_valset, teacher)


def _teacher(name: str, extras: dict[str, Any]) -> tuple[str, int] | None:
    """The (strategy, demos) building a fine-tune's teacher; None for ``teacher="none"``."""
    strategy = extras.get("teacher")
    if strategy is None or str(strategy).lower() == "none":
        return None
    demos = extras.get("teacher_demos", 4)
    if isinstance(demos, bool) or not isinstance(demos, int) or demos < 1:
        raise OptimizerConfigError(f"{name}: teacher_demos must be an integer >= 1, not {demos!r}")
    teacher_name = canonical_name(str(strategy))
    if teacher_name not in ("StratifiedFewShot", "RetrievalFewShot"):
        raise OptimizerConfigError(
            f"{name}: teacher must be StratifiedFewShot, RetrievalFewShot or none, "
            f"not {strategy!r} (a teacher is built from labeled examples, without LM calls)"
        )
    return teacher_name, demos
