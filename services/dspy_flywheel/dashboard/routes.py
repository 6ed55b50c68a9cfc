"""Starlette routes: ``/dashboard`` (HTML) and ``/api/v1/dashboard`` (JSON)."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from dspy_flywheel.dashboard.data import collect_cards
from dspy_flywheel.dashboard.render import render_page


def dashboard_routes(pool: Callable[[], asyncpg.Pool]) -> list[Route]:
    """``pool`` is called per request (the manager opens its pool at startup)."""

    async def page(_: Request) -> Response:
        return HTMLResponse(render_page(await collect_cards(pool())))

    async def data(_: Request) -> Response:
        return JSONResponse({"workers": [c.as_dict() for c in await collect_cards(pool())]})

    return [Route("/dashboard", page), Route("/api/v1/dashboard", data)]
