"""``@dspy_worker`` and ``@dspy_worker_optimized``: turn a DSPy module class (or a function)
into a worker factory.

    @dspy_worker("classifier")
    class Classify(dspy.Module):
        def __init__(self):
            super().__init__()
            self.predict = dspy.Predict("text -> label")
        def forward(self, text):
            return self.predict(text=text)

    worker = Classify()                 # a Worker: emits events, hot-reloads
    pred = worker(text="refund please") # pred.execution_id -> worker.feedback(...)

A function gets the predictor of ``signature`` as its first argument (its docstring becomes the
signature's instructions)::

    @dspy_worker("classifier", signature="text -> label")
    def classify(predict, text):
        return predict(text=text)

``@dspy_worker_optimized`` takes the same arguments plus the optimization settings, and
registers them on the trigger-config topic when the worker starts; nothing else changes.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

import dspy

from dspy_flywheel.compile.catalog import DEFAULT_OPTIMIZER
from dspy_flywheel.compile.errors import RefError
from dspy_flywheel.compile.judge import label_fields
from dspy_flywheel.compile.refs import Metric, load_ref, ref_of
from dspy_flywheel.sdk.errors import WorkerConfigError
from dspy_flywheel.sdk.settings import WorkerSettings
from dspy_flywheel.sdk.triggers import TRIGGER_PARAMS, OptimizationConfig
from dspy_flywheel.sdk.worker import Worker

log = logging.getLogger(__name__)

SignatureLike = str | type[dspy.Signature]


class FunctionModule(dspy.Module):  # type: ignore[misc]  # dspy is untyped
    """A function worker as a module: one ``predict`` and the function as ``forward``."""

    def __init__(self, fn: Callable[..., Any], signature: SignatureLike) -> None:
        super().__init__()
        instructions = inspect.getdoc(fn) if isinstance(signature, str) else None
        sig = (
            dspy.Signature(signature, instructions)
            if isinstance(signature, str) and instructions
            else signature
        )
        self.predict = dspy.Predict(sig)
        self._fn = fn

    def forward(self, **inputs: Any) -> Any:
        result = self._fn(self.predict, **inputs)
        if inspect.isawaitable(result):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return _as_prediction(asyncio.run(_await(result)))
            raise TypeError(f"{self._fn.__name__} is async: use `await worker.acall(...)`")
        return _as_prediction(result)

    async def aforward(self, **inputs: Any) -> Any:
        result = self._fn(self.predict, **inputs)
        if inspect.isawaitable(result):
            result = await result
        return _as_prediction(result)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _as_prediction(result: Any) -> Any:
    return dspy.Prediction(**result) if isinstance(result, dict) else result


class WorkerSpec:
    """What a decorator returns: call it (like the class) to start a ``Worker``."""

    def __init__(
        self,
        target: Any,
        *,
        worker_type: str,
        worker_id: str | None,
        signature: SignatureLike | None,
        metric: Metric | None,
        optimization: OptimizationConfig | None,
    ) -> None:
        _check_name("worker_type", worker_type)
        if worker_id is not None:
            _check_name("worker_id", worker_id)
        if metric is not None and not callable(metric):
            raise WorkerConfigError(
                f"metric must be callable(example, prediction, trace=None), got {metric!r}"
            )
        self.target = target
        self.worker_type = worker_type
        self.worker_id = worker_id or worker_type
        self.signature = signature
        self.metric = metric
        self.optimization = optimization
        self.is_function = not isinstance(target, type)
        if self.is_function:
            _check_function(target, signature)
        elif not issubclass(target, dspy.Module):
            raise WorkerConfigError(
                "@dspy_worker wraps a dspy.Module subclass or a function, "
                f"got class {target.__name__}"
            )
        # The optimizer calls a program_ref with no arguments to get a dspy.Module. With
        # decorator syntax the decorated name holds this spec: the ref is its build_program.
        # Called as a function (spec = dspy_worker(...)(Cls)) the name still holds the class,
        # which is checked when the worker starts (``resolved_program_ref``).
        target_ref = ref_of(target)
        self._target_ref = target_ref
        self.program_ref = f"{target_ref}.build_program" if target_ref else None
        self.metric_ref = ref_of(metric) if metric is not None else None
        if optimization is not None:
            _warn_unimportable(self)
        functools.update_wrapper(self, target, updated=())

    def build_program(self, *args: Any, **kwargs: Any) -> dspy.Module:
        """The worker's program as written in code (no Kafka, no background threads)."""
        if self.is_function:
            assert self.signature is not None
            return FunctionModule(self.target, self.signature)
        program: dspy.Module = self.target(*args, **kwargs)
        return program

    def resolved_program_ref(self) -> str | None:
        """The program_ref as importable now: the spec's build_program, or the plain class."""
        if self._target_ref is None:
            return None
        try:
            named = load_ref(self._target_ref)
        except RefError:
            return None
        if named is self:
            return f"{self._target_ref}.build_program"
        if not self.is_function and named is self.target:
            return self._target_ref  # the Module class itself, constructed with no arguments
        return self.program_ref

    def create(
        self,
        *args: Any,
        settings: WorkerSettings | None = None,
        worker_id: str | None = None,
        **kwargs: Any,
    ) -> Worker:
        """Start a worker; ``args``/``kwargs`` go to the module's constructor."""
        output_fields = None
        if self.signature is not None:
            output_fields = label_fields(list(dspy.ensure_signature(self.signature).output_fields))
        return Worker(
            worker_type=self.worker_type,
            worker_id=worker_id or self.worker_id,
            factory=functools.partial(self.build_program, *args, **kwargs),
            settings=settings,
            metric=self.metric,
            output_fields=output_fields,
            optimization=self.optimization,
            program_ref=self.resolved_program_ref(),
            metric_ref=self.metric_ref,
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Worker:
        return self.create(*args, **kwargs)

    def __repr__(self) -> str:
        kind = "optimized worker" if self.optimization else "worker"
        return f"<{kind} {self.worker_id!r} over {self.target.__qualname__}>"


def dspy_worker(
    worker_type: str,
    signature: SignatureLike | None = None,
    *,
    worker_id: str | None = None,
    metric: Metric | None = None,
) -> Callable[[Any], WorkerSpec]:
    """Make a worker of a dspy.Module subclass or a function (see the module docstring).

    ``worker_id`` (default: ``worker_type``) keys its events and published programs.
    ``metric(example, prediction, trace=None)`` scores feedback labels (default: exact match).
    """

    return _spec(worker_type, signature, worker_id, metric, None)


def _spec(
    worker_type: str,
    signature: SignatureLike | None,
    worker_id: str | None,
    metric: Metric | None,
    optimization: OptimizationConfig | None,
) -> Callable[[Any], WorkerSpec]:
    return functools.partial(
        WorkerSpec,
        worker_type=worker_type,
        worker_id=worker_id,
        signature=signature,
        metric=metric,
        optimization=optimization,
    )


def dspy_worker_optimized(
    worker_type: str,
    signature: SignatureLike | None = None,
    optimizer: str = DEFAULT_OPTIMIZER,
    optimization_trigger: str = "manual",
    auto_collect_training: bool = True,
    metric: Metric | None = None,
    *,
    worker_id: str | None = None,
    **optimizer_kwargs: Any,
) -> Callable[[Any], WorkerSpec]:
    """A ``@dspy_worker`` that also registers how it wants to be optimized.

    ``optimizer``: any name of ``compile.catalog`` (RetrievalCascade, the default, learns from
    the labeled examples with no LM calls to compile; MIPROv2, BootstrapFewShot, ...).
    ``optimization_trigger``: manual | periodic | performance. Keyword arguments named like
    trigger parameters (threshold, window_size, window_seconds, min_examples, min_new_examples,
    cooldown_seconds, interval_seconds, cron, enabled) tune the trigger; every other keyword
    goes to the optimizer (e.g. ``k=8``). Both are checked now, with errors listing what is
    accepted. An operator's later edits on the config topic win over these defaults (see
    ``dspy_flywheel.sdk.config_sync``).
    """
    trigger_params = {k: v for k, v in optimizer_kwargs.items() if k in TRIGGER_PARAMS}
    optimizer_params = {k: v for k, v in optimizer_kwargs.items() if k not in TRIGGER_PARAMS}
    optimization = OptimizationConfig(
        optimizer=optimizer,
        trigger=optimization_trigger,
        trigger_params=trigger_params,
        optimizer_params=optimizer_params,
        auto_collect_training=auto_collect_training,
    )

    return _spec(worker_type, signature, worker_id, metric, optimization)


def _check_name(what: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise WorkerConfigError(
            f"{what} must be a non-empty string of at most 200 characters, got {value!r}"
        )


def _check_function(fn: Any, signature: SignatureLike | None) -> None:
    if not callable(fn):
        raise WorkerConfigError(
            f"@dspy_worker wraps a dspy.Module subclass or a function, got {fn!r}"
        )
    if signature is None:
        raise WorkerConfigError(
            f"function worker {fn.__name__}: pass signature=, e.g. signature='text -> label'"
        )
    try:
        dspy.ensure_signature(signature)
    except Exception as exc:
        raise WorkerConfigError(f"bad signature {signature!r}: {exc}") from exc
    params = list(inspect.signature(fn).parameters.values())
    if not params or params[0].kind not in (
        params[0].POSITIONAL_ONLY,
        params[0].POSITIONAL_OR_KEYWORD,
    ):
        raise WorkerConfigError(
            f"function worker {fn.__name__} takes the predictor first: "
            f"def {fn.__name__}(predict, ...)"
        )


def _warn_unimportable(spec: WorkerSpec) -> None:
    if spec.program_ref is None:
        log.warning(
            "worker %s: %s is not importable from another process (defined in __main__ or a "
            "function); the optimizer service cannot rebuild it. Define it at module level.",
            spec.worker_id,
            spec.target.__qualname__,
        )
    if spec.metric is not None and spec.metric_ref is None:
        log.warning(
            "worker %s: metric %r is not importable; the optimizer will use exact match.",
            spec.worker_id,
            spec.metric,
        )
