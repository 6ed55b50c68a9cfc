"""The embedded offline LM: llama.cpp in-process through xllamacpp, as a DSPy engine.

``dspy.LM(name, engine=EmbeddedEngine(...))`` sends canonical requests to ``complete``.
A JSON schema in ``response_format`` (DSPy's JSONAdapter) is enforced by llama.cpp as a grammar,
so even small models return parseable output. One model load per process and config
(``load_engine``); calls are serialized by a lock, which on a few CPU cores is also the
fastest schedule.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from dspy.clients.engines.base import validate_request
from dspy.lm15 import (
    ContextLengthError,
    InvalidRequestError,
    Request,
    Response,
    ServerError,
    response_to_events,
)

from dspy_flywheel.finetune.artifacts import adapter_sha
from dspy_flywheel.lm._convert import chat_messages, json_schema_of, make_response
from dspy_flywheel.lm.stats import EngineCounters

logger = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class EmbeddedConfig:
    """What identifies a loaded model: same config, same engine in this process."""

    model_path: str
    n_ctx: int = 8192
    threads: int = 2
    max_tokens: int = 512
    temperature: float = 0.0
    seed: int = 0
    lora_path: str | None = None  # a llama.cpp LoRA adapter GGUF applied on the model

    @property
    def model_name(self) -> str:
        return Path(self.model_path).stem


class EmbeddedEngine:
    """A DSPy engine running a GGUF model in this process.

    ``counters`` holds calls, prompt/completion tokens and errors; read it with
    ``dspy_flywheel.lm.engine_stats(lm)``.
    """

    supports_response_schema: ClassVar[bool] = True
    supports_function_calling: ClassVar[bool] = False
    supports_reasoning: ClassVar[bool] = False
    supported_params: ClassVar[frozenset[str]] = frozenset(
        {"temperature", "max_tokens", "top_p", "top_k", "stop", "seed", "response_format"}
    )

    def __init__(self, config: EmbeddedConfig) -> None:
        import xllamacpp

        self.config = config
        self.counters = EngineCounters()
        self._lock = threading.Lock()
        params = server_params(config, slots=1)
        # The embedded server also listens on a loopback port; a random key locks it.
        params.api_keys = [secrets.token_hex(16)]
        started = time.perf_counter()
        self._server = xllamacpp.Server(params)
        self.load_seconds = time.perf_counter() - started
        logger.info(
            "loaded %s in %.1fs (ctx=%d threads=%d)",
            config.model_name,
            self.load_seconds,
            config.n_ctx,
            config.threads,
        )

    def complete(self, request: Request) -> Response:
        if self.config.lora_path is None and adapter_sha(request.model) is not None:
            return adapter_engine(self.config, request.model).complete(request)
        body = checked_body(request, self.config, self.counters)
        with self._lock:
            try:
                result = self._server.handle_chat_completions(body)
            except ValueError as exc:  # xllamacpp raises for a schema it cannot compile
                self.counters.record_error()
                raise InvalidRequestError(str(exc), provider="embedded") from exc
        return response_from_result(result, self.config.model_name, self.counters)

    def stream(self, request: Request) -> Iterator[Any]:
        return iter(response_to_events(self.complete(request)))

    def close(self) -> None:
        """Borrowed by every LM built on it; the model stays loaded for the process."""

    def dump_state(self) -> dict[str, Any]:
        return asdict(self.config)

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> EmbeddedEngine:
        return load_engine(EmbeddedConfig(**state))

    def __reduce__(self) -> tuple[Any, tuple[EmbeddedConfig]]:
        return (load_engine, (self.config,))  # another process loads (once) on unpickling


def server_params(config: EmbeddedConfig, *, slots: int) -> Any:
    """llama.cpp server parameters for ``config`` with ``slots`` parallel sequences.

    Several slots share one unified KV cache of ``n_ctx`` tokens (one call may use all of it) and
    are decoded together (continuous batching); a slot keeps its last prompt so a call sharing
    the prefix (instruction and demos of a trial) only evaluates the new tokens.
    """
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = config.model_path
    params.n_ctx = config.n_ctx
    params.n_parallel = slots
    params.kv_unified = slots > 1
    params.cont_batching = True
    params.cache_prompt = True
    params.n_predict = config.max_tokens
    params.cpuparams.n_threads = config.threads
    params.cpuparams_batch.n_threads = config.threads
    params.sampling.temp = config.temperature
    params.sampling.seed = config.seed
    if config.lora_path is not None:
        adapter = xllamacpp.CommonAdapterLoraInfo()
        adapter.path = config.lora_path
        adapter.scale = 1.0
        params.lora_adapters = [adapter]
    params.warmup = False
    params.verbosity = 0
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # any free port
    return params


def response_from_result(result: Any, model: str, counters: EngineCounters) -> Response:
    """The DSPy response for a llama.cpp chat-completions result, counted in ``counters``."""
    if not isinstance(result, dict) or "error" in result:
        counters.record_error()
        raise error_from_result(result)
    choice = result["choices"][0]
    usage = result.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens", 0))
    completion_tokens = int(usage.get("completion_tokens", 0))
    counters.record_call(prompt_tokens, completion_tokens)
    return make_response(
        choice["message"].get("content") or "",
        model=model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason=str(choice.get("finish_reason") or "stop"),
        response_id=result.get("id"),
    )


def checked_body(
    request: Request, config: EmbeddedConfig, counters: EngineCounters
) -> dict[str, Any]:
    """``request`` validated, as a body (a request that has none is counted as an error)."""
    validate_request(request)
    try:
        return request_body(request, config)
    except Exception:
        counters.record_error()
        raise


def request_body(request: Request, config: EmbeddedConfig) -> dict[str, Any]:
    """The llama.cpp chat-completions body for a canonical request."""
    settings = request.config
    body: dict[str, Any] = {
        "messages": chat_messages(request),
        "max_tokens": settings.max_tokens or config.max_tokens,
        "temperature": config.temperature if settings.temperature is None else settings.temperature,
        "seed": config.seed if settings.seed is None else settings.seed,
    }
    if settings.top_p is not None:
        body["top_p"] = settings.top_p
    if settings.top_k is not None:
        body["top_k"] = settings.top_k
    if settings.stop:
        body["stop"] = list(settings.stop)
    wants_json, schema = json_schema_of(settings.response_format)
    if schema is not None:
        body["json_schema"] = schema  # compiled to a grammar by llama.cpp
    elif wants_json:
        body["response_format"] = {"type": "json_object"}
    if settings.extensions:
        body.update(settings.extensions)  # llama.cpp knobs such as min_p or grammar
    return body


def error_from_result(result: Any) -> Exception:
    """The ``dspy.lm15`` error for a llama.cpp error result."""
    error = result.get("error", {}) if isinstance(result, dict) else {}
    message = str(error.get("message", f"unexpected llama.cpp result: {result!r}"))
    failure: Exception
    if error.get("type") == "exceed_context_size_error":
        failure = ContextLengthError(
            f"{message} (raise FLYWHEEL_LM_CTX)", provider="embedded", status=400
        )
    elif error.get("code") == 400:
        failure = InvalidRequestError(message, provider="embedded", status=400)
    else:
        failure = ServerError(message, provider="embedded", status=error.get("code"))
    return failure


class PerProcess(Generic[K, V]):
    """One value per key in this process, built on first use (under a lock, so once)."""

    def __init__(self, build: Callable[[K], V]) -> None:
        self._build = build
        self._values: dict[K, V] = {}
        self._lock = threading.Lock()

    def __call__(self, key: K) -> V:
        with self._lock:
            value = self._values.get(key)
            if value is None:
                value = self._values[key] = self._build(key)
            return value


_engines: PerProcess[EmbeddedConfig, EmbeddedEngine] = PerProcess(EmbeddedEngine)


def load_engine(config: EmbeddedConfig) -> EmbeddedEngine:
    """The process-wide engine for ``config``, loading the model on first use."""
    return _engines(config)


def adapter_engine(config: EmbeddedConfig, model: str) -> EmbeddedEngine:
    """The in-process engine serving the LoRA adapter named by ``model`` (``<base>@lora-<sha>``)
    on ``config``'s model: checked against the base, verified in the artifact store, loaded once
    into a new engine. Raises ``finetune.errors.AdapterError`` subclasses."""
    from dspy_flywheel.finetune.serving import adapter_engine_config

    return load_engine(adapter_engine_config(config, model))
