"""HTTP server metrics for the manager (``http.server.request.duration``, semantic conventions).

An ASGI middleware; the route is the matched template (``/api/v1/jobs/{job_id}``), never the raw
path, so job ids do not become label values.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from dspy_flywheel.metrics.catalog import Meter

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

_meter = Meter("manager")
duration = _meter.histogram(
    "http.server.request.duration",
    "s",
    "duration of HTTP requests the manager served",
    ("http.request.method", "http.route", "http.response.status_code"),
)


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            duration.record(
                time.perf_counter() - started,
                {
                    "http.request.method": scope["method"],
                    "http.route": getattr(route, "path", None) or "unmatched",
                    "http.response.status_code": status[0],
                },
            )
