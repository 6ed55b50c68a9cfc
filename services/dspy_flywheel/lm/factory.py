"""Build the ``dspy.LM`` every service and the SDK use, and read its call/token counters."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import dspy
from dspy.lm15 import Request, Response
from dspy.utils.callback import BaseCallback

from dspy_flywheel.lm.adapter import InlineChatAdapter
from dspy_flywheel.lm.embedded import EmbeddedConfig, load_engine
from dspy_flywheel.lm.errors import LMSetupError
from dspy_flywheel.lm.launcher import embedded_config, server_config
from dspy_flywheel.lm.served import connect
from dspy_flywheel.lm.settings import LMSettings
from dspy_flywheel.lm.stats import EngineCounters, EngineStats

logger = logging.getLogger(__name__)


class AsyncEngineAdapter:
    """The async half DSPy wants for ``acall``: runs the sync engine in a worker thread."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    async def complete(self, request: Request) -> Response:
        response: Response = await asyncio.to_thread(self.engine.complete, request)
        return response

    async def stream(self, request: Request) -> AsyncIterator[Any]:
        for event in await asyncio.to_thread(lambda: list(self.engine.stream(request))):
            yield event

    async def aclose(self) -> None:
        pass


def make_lm(
    engine: Any,
    *,
    name: str | None = None,
    temperature: float = 0.0,
    max_tokens: int = 512,
    cache: bool = False,
    num_retries: int = 0,
) -> dspy.LM:
    """A ``dspy.LM`` on ``engine`` (an ``EmbeddedEngine``, the tests' ``FakeEngine``, any engine
    with ``complete(Request) -> Response``), usable from sync and async DSPy code."""
    if name is None:
        label = getattr(engine, "model", None) or getattr(
            getattr(engine, "config", None), "model_name", "engine"
        )
        name = f"flywheel/{label}"
    extra: dict[str, Any] = {}
    config = getattr(engine, "config", None)
    if isinstance(config, EmbeddedConfig):  # BootstrapFinetune trains LoRA adapters for it
        from dspy_flywheel.finetune.provider import EmbeddedProvider

        extra["provider"] = EmbeddedProvider(config.model_path)
    return dspy.LM(
        name,
        engine=engine,
        async_engine=AsyncEngineAdapter(engine),
        temperature=temperature,
        max_tokens=max_tokens,
        cache=cache,
        num_retries=num_retries,
        **extra,
    )


class _ErrorCounter(BaseCallback):  # type: ignore[misc]  # dspy ships no type hints
    def __init__(self, counters: EngineCounters) -> None:
        self.counters = counters

    def on_lm_end(
        self, call_id: str, outputs: dict[str, Any] | None, exception: BaseException | None = None
    ) -> None:
        if exception is not None:
            self.counters.record_error()


class CountingLM(dspy.LM):  # type: ignore[misc]  # dspy ships no type hints
    """A hosted/served LM (DSPy model string) that keeps the same counters as our engines.

    Calls and tokens come from each completed call's history entry; errors from a callback.
    With ``dspy.settings.disable_history`` set, calls and tokens are not counted.
    """

    def __init__(self, model: str, **kwargs: Any) -> None:
        self.counters = EngineCounters()
        callbacks = [*(kwargs.pop("callbacks", None) or []), _ErrorCounter(self.counters)]
        super().__init__(model, callbacks=callbacks, **kwargs)

    def update_history(self, entry: dict[str, Any]) -> None:
        usage = entry.get("usage") or {}
        self.counters.record_call(
            int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        )
        super().update_history(entry)


def _embedded_engine(settings: LMSettings) -> Any:
    """The machine's shared server (started on first use) or, with ``FLYWHEEL_LM_SERVER=
    inprocess`` or when the server cannot start, the model loaded in this process."""
    config = embedded_config(settings)  # a missing model fails here, naming the fix
    if settings.is_shared:
        try:
            return connect(server_config(settings))
        except LMSetupError as exc:
            logger.warning("shared LM server unavailable (%s); loading the model in-process", exc)
    return load_engine(config)


def build_lm(settings: LMSettings | None = None) -> dspy.LM:
    """The LM selected by ``FLYWHEEL_LM`` (see ``dspy_flywheel.lm.settings``).

    One engine per process and config: later calls share the engine and counters.
    """
    settings = settings or LMSettings()
    common: dict[str, Any] = {
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
        "cache": settings.cache,
        "num_retries": settings.num_retries,
    }
    if settings.is_embedded:
        label = settings.model if "/" not in settings.model else Path(settings.model).stem
        return make_lm(_embedded_engine(settings), name=f"embedded/{label}", **common)
    if settings.api_base:
        common["api_base"] = settings.api_base
    if settings.api_key is not None:
        common["api_key"] = settings.api_key.get_secret_value()
    logger.info("using hosted LM %s (api_base=%s)", settings.backend, settings.api_base)
    return CountingLM(settings.backend, **common)


def configure_lm(lm: dspy.BaseLM, **settings: Any) -> None:
    """``dspy.configure`` with ``lm`` and the flywheel's ``InlineChatAdapter`` (see
    ``lm.adapter``): what a worker process, an optimization job and the demo do, so that a job
    evaluates the way the workers serve."""
    dspy.configure(lm=lm, adapter=InlineChatAdapter(), **settings)


def reuse_identical_calls(lm: dspy.BaseLM) -> dspy.BaseLM:
    """For one job's process: an identical request (same prompt and settings) is answered from
    memory instead of the model again, e.g. MIPROv2's full evaluations of examples a minibatch
    already scored. Memory only, so nothing outlives the process; the engine counters count
    only the calls that reached the model."""
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    lm.cache = True
    return lm


def engine_counters(lm: dspy.BaseLM) -> EngineCounters:
    """The live counters behind ``lm`` (built by ``build_lm`` or ``make_lm``)."""
    counters = getattr(getattr(lm, "engine", None), "counters", None)
    if counters is None:
        counters = getattr(lm, "counters", None)
    if not isinstance(counters, EngineCounters):
        raise TypeError(f"{lm!r} has no flywheel counters; build it with build_lm() or make_lm()")
    return counters


def engine_stats(lm: dspy.BaseLM) -> EngineStats:
    """Calls, prompt/completion tokens and errors so far (shared by copies of ``lm``)."""
    return engine_counters(lm).snapshot()


def reset_engine_stats(lm: dspy.BaseLM) -> EngineStats:
    """Zero the counters behind ``lm``; returns what they held."""
    return engine_counters(lm).reset()
