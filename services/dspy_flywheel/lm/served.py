"""A DSPy engine that sends calls to the shared local LM server (``dspy_flywheel.lm.server``).

Same request body, result handling and counters as the in-process ``EmbeddedEngine``; calls are
not serialized here: the server runs up to ``slots`` of them at once. Counters are this
process's (a worker's, a job's), the server's own load is not in them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
from dspy.lm15 import Request, Response, ServerError, response_to_events

from dspy_flywheel.finetune.artifacts import adapter_sha
from dspy_flywheel.lm.embedded import (
    EmbeddedEngine,
    PerProcess,
    adapter_engine,
    checked_body,
    response_from_result,
)
from dspy_flywheel.lm.launcher import ensure_server
from dspy_flywheel.lm.server import ServerConfig, ServerInfo
from dspy_flywheel.lm.stats import EngineCounters

logger = logging.getLogger(__name__)

CALL_TIMEOUT_S = 900.0  # a call may queue behind every slot's work on a loaded machine


class ServedEngine:
    """Calls the shared server; starts it again if it went away (idle exit, crash)."""

    supports_response_schema: ClassVar[bool] = True
    supports_function_calling: ClassVar[bool] = False
    supports_reasoning: ClassVar[bool] = False
    supported_params: ClassVar[frozenset[str]] = EmbeddedEngine.supported_params

    def __init__(self, config: ServerConfig) -> None:
        self.server_config = config
        self.config = config.model
        self.counters = EngineCounters()
        self._info_lock = threading.Lock()
        self._info = ensure_server(config)
        self._client = httpx.Client(timeout=httpx.Timeout(CALL_TIMEOUT_S, connect=10.0))

    @property
    def info(self) -> ServerInfo:
        with self._info_lock:
            return self._info

    @property
    def address(self) -> str:
        return self.info.address

    def complete(self, request: Request) -> Response:
        if adapter_sha(request.model) is not None:  # the shared server runs the base model only
            return adapter_engine(self.config, request.model).complete(request)
        result = self._post(checked_body(request, self.config, self.counters))
        return response_from_result(result, self.config.model_name, self.counters)

    def _post(self, body: dict[str, Any]) -> Any:
        info = self.info
        for attempt in (1, 2):
            try:
                response = self._client.post(
                    f"{info.address}/v1/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {info.api_key}"},
                )
                return response.json()
            except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
                if attempt == 2:
                    self.counters.record_error()
                    raise ServerError(
                        f"LM server at {info.address} unreachable: {exc}", provider="embedded"
                    ) from exc
                logger.warning(
                    "LM server at %s unreachable (%s); starting it again", info.address, exc
                )
                info = self._reconnect(info)
            except (httpx.HTTPError, ValueError) as exc:
                self.counters.record_error()
                raise ServerError(f"LM server call failed: {exc}", provider="embedded") from exc
        raise AssertionError("unreachable")

    def _reconnect(self, seen: ServerInfo) -> ServerInfo:
        with self._info_lock:
            if self._info == seen:
                self._info = ensure_server(self.server_config)
            return self._info

    def stream(self, request: Request) -> Iterator[Any]:
        return iter(response_to_events(self.complete(request)))

    def close(self) -> None:
        """Borrowed by every LM built on it; the server outlives this process."""

    def __reduce__(self) -> tuple[Any, tuple[ServerConfig]]:
        return (connect, (self.server_config,))  # another process connects (once) on unpickling


_engines: PerProcess[ServerConfig, ServedEngine] = PerProcess(ServedEngine)


def connect(config: ServerConfig) -> ServedEngine:
    """This process's engine on the shared server for ``config``, starting the server if needed."""
    return _engines(config)
