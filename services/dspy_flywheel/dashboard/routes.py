"""Starlette routes of the operator's dashboard.

GET  /dashboard                  overview: jobs in flight, alerts, one card per worker (HTML)
GET  /dashboard/jobs/{job_id}    one job: status history, trace id (HTML)
GET  /dashboard/traces/{trace_id}  a trace's span tree read from Jaeger's query API (HTML)
GET  /api/v1/dashboard           the overview's numbers (JSON)
GET  /api/v1/dashboard/jobs/{job_id}
GET  /api/v1/dashboard/traces/{trace_id}
GET  /dashboard/login            sign-in form; POST it a token: an HttpOnly session cookie
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs

import asyncpg
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from dspy_flywheel.access.rbac import SESSION_COOKIE
from dspy_flywheel.dashboard.data import overview
from dspy_flywheel.dashboard.job_page import render_job
from dspy_flywheel.dashboard.jobs import job_page
from dspy_flywheel.dashboard.render import page, render_overview
from dspy_flywheel.dashboard.trace import read_trace
from dspy_flywheel.dashboard.trace_page import render_trace

_LOGIN_FORM = """<form method='post' action='/dashboard/login'>
<label>API token <input type='password' name='token' id='token' autocomplete='off'></label>
<button type='submit' id='sign-in'>Sign in</button></form>
<p class='muted'>A viewer token is enough. The session cookie allows reading only.</p>"""


def dashboard_routes(
    pool: Callable[[], asyncpg.Pool], *, refresh_s: int = 10, jaeger_url: str | None = None
) -> list[Route]:
    """``pool`` is called per request (the manager opens its pool at startup)."""

    async def overview_page(_: Request) -> Response:
        return HTMLResponse(render_overview(await overview(pool()), refresh_s))

    async def overview_data(_: Request) -> Response:
        return JSONResponse((await overview(pool())).as_dict())

    async def job_html(request: Request) -> Response:
        found = await job_page(pool(), request.path_params["job_id"])
        if found is None:
            return HTMLResponse(page("unknown job", "<p>no such job</p>", 0), status_code=404)
        return HTMLResponse(render_job(found, refresh_s))

    async def job_data(request: Request) -> Response:
        found = await job_page(pool(), request.path_params["job_id"])
        if found is None:
            return JSONResponse({"error": "unknown job"}, status_code=404)
        return JSONResponse(found.as_dict())

    async def trace_html(request: Request) -> Response:
        view = await read_trace(jaeger_url, request.path_params["trace_id"])
        return HTMLResponse(render_trace(view, refresh_s), status_code=view.status)

    async def trace_data(request: Request) -> Response:
        view = await read_trace(jaeger_url, request.path_params["trace_id"])
        return JSONResponse(view.as_dict(), status_code=view.status)

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return HTMLResponse(page("dspy-flywheel: sign in", _LOGIN_FORM, 0))
        token = parse_qs((await request.body()).decode(errors="replace")).get("token", [""])[0]
        reply = RedirectResponse("/dashboard", status_code=303)
        reply.set_cookie(SESSION_COOKIE, token.strip(), httponly=True, samesite="strict", path="/")
        return reply

    return [
        Route("/dashboard", overview_page),
        Route("/dashboard/jobs/{job_id}", job_html),
        Route("/dashboard/traces/{trace_id}", trace_html),
        Route("/dashboard/login", login, methods=["GET", "POST"]),
        Route("/api/v1/dashboard", overview_data),
        Route("/api/v1/dashboard/jobs/{job_id}", job_data),
        Route("/api/v1/dashboard/traces/{trace_id}", trace_data),
    ]
