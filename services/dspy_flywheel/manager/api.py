"""HTTP API of the manager (Starlette), JSON under ``/api/v1``.

    GET  /api/v1/health
    GET  /api/v1/jobs?worker_id=&status=&limit=        history, newest first
    POST /api/v1/jobs            {worker_id, optimizer?, params?, program_ref?, metric_ref?}
    POST /api/v1/jobs/batch      {worker_ids: [...], optimizer?, params?, ...}
    GET  /api/v1/jobs/{job_id}
    POST /api/v1/jobs/{job_id}/cancel
    POST /api/v1/workers/{worker_id}/schedule          {trigger_type?}
    GET  /api/v1/workers/{worker_id}/metrics
    GET  /api/v1/workers/{worker_id}/programs
    GET  /api/v1/workers/{worker_id}/rollout          shares, live accuracy + interval, decisions
    POST /api/v1/workers/{worker_id}/programs/{promote|rollback|pin|unpin}  {version?, reason?}
    GET  /api/v1/workers/{worker_id}/rollout/config   canary settings
    POST /api/v1/workers/{worker_id}/rollout/config   {share?, confidence?, margin?, ...}
    GET  /api/v1/alerts?worker_id=&limit=   the trigger's alerts, newest first
    GET  /api/v1/dashboard, /api/v1/dashboard/jobs/{job_id}   and the HTML pages
         /dashboard, /dashboard/jobs/{job_id}, /dashboard/login (see dspy_flywheel.dashboard)

``create_secured_app`` puts the routes behind API tokens with roles and writes the audit log
(see ``dspy_flywheel.access``): every mutation has its audit row before it runs (no audit, no
action: 503), bodies over 1 MiB get 413, and the requester of a job is the authenticated caller.

Every input is checked before it is used (``manager.inputs``, ``contracts.validate``): ids in
the path, query and body, types, JSON depth, NUL characters, unknown fields. A bad one is a 400
naming the field; a database or broker that cannot be reached is a 503.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dspy_flywheel.access import AccessMiddleware, AuditLog, TokenStore
from dspy_flywheel.access.rbac import ASGIApp
from dspy_flywheel.compile.errors import OptimizerConfigError
from dspy_flywheel.contracts.validate import InvalidInput, check_id
from dspy_flywheel.dashboard import dashboard_routes
from dspy_flywheel.manager.core import OptimizationManager
from dspy_flywheel.manager.inputs import CONFIG_KEYS, ManagerError, body_keys, parse_body
from dspy_flywheel.metrics.http import HttpMetrics
from dspy_flywheel.rollout.config import SETTINGS as ROLLOUT_SETTINGS
from dspy_flywheel.rollout.config import RolloutConfigError
from dspy_flywheel.rollout.operator import CommandError
from dspy_flywheel.trigger.store import fetch_alerts

log = logging.getLogger(__name__)
Endpoint = Callable[[Request], Awaitable[Response]]
# What a request may fail on that is the caller's to fix (400), and what means a dependency is
# away (503: nothing was done, try again later).
_BAD_REQUEST = (ManagerError, OptimizerConfigError, InvalidInput, CommandError, RolloutConfigError)
_UNAVAILABLE = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError, KafkaError)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    raw = await request.body()
    body = parse_body(raw) if raw else {}
    body_keys(body, allowed)
    return body


def _limit(request: Request) -> int:
    """The ``limit`` query parameter (default 50), clamped to 1..500."""
    try:
        limit = int(request.query_params.get("limit", "50"))
    except ValueError:
        raise ManagerError("limit must be an integer") from None
    return min(max(limit, 1), 500)


def _path_id(request: Request, name: str) -> str:
    return check_id(request.path_params[name], name)


def _query_id(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    return None if value is None else check_id(value, name)


def _caller(request: Request) -> str:
    """The authenticated caller (the access middleware puts it in the scope); "api" when the
    app runs without it (tests, a loopback-only setup)."""
    principal = request.scope.get("state", {}).get("principal")
    return f"api:{principal.name}" if principal is not None else "api"


def _guarded(handler: Endpoint) -> Endpoint:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except _BAD_REQUEST as exc:
            return _error(400, str(exc))
        except _UNAVAILABLE as exc:
            log.warning("%s %s: dependency unavailable: %r", request.method, request.url.path, exc)
            return _error(503, f"a dependency is unavailable ({type(exc).__name__}); retry later")

    return wrapped


def create_app(manager: OptimizationManager, *, own_manager: bool = False) -> Starlette:
    """The API over ``manager``; with ``own_manager`` the app starts and closes it."""

    async def health(_: Request) -> Response:
        await manager.pool.fetchval("SELECT 1")
        return JSONResponse({"status": "ok"})

    async def list_jobs(request: Request) -> Response:
        status = request.query_params.get("status")
        found = await manager.list_jobs(
            worker_id=_query_id(request, "worker_id"), status=status, limit=_limit(request)
        )
        return JSONResponse({"jobs": [j.as_dict() for j in found]})

    async def create_job(request: Request) -> Response:
        body = await _body(request, ("worker_id", *CONFIG_KEYS))
        if "worker_id" not in body:
            return _error(400, "worker_id (string) is required")
        config = {k: body[k] for k in CONFIG_KEYS if k in body}
        job_id = await manager.execute_optimization(
            body["worker_id"], config, requested_by=_caller(request)
        )
        return JSONResponse({"job_id": job_id, "status": "requested"}, status_code=202)

    async def batch(request: Request) -> Response:
        body = await _body(request, ("worker_ids", *CONFIG_KEYS))
        workers = body.get("worker_ids")
        if not isinstance(workers, list) or not all(isinstance(w, str) for w in workers):
            return _error(400, "worker_ids (list of strings) is required")
        config = {k: body[k] for k in CONFIG_KEYS if k in body}
        job_ids = await manager.batch_optimize(workers, config, requested_by=_caller(request))
        return JSONResponse({"jobs": job_ids}, status_code=202)

    async def get_job(request: Request) -> Response:
        job_id = _path_id(request, "job_id")
        status = await manager.get_optimization_status(job_id)
        if status is None:
            return _error(404, f"unknown job {job_id}")
        return JSONResponse(status.as_dict())

    async def cancel(request: Request) -> Response:
        job_id = _path_id(request, "job_id")
        await _body(request, ())
        status = await manager.cancel(job_id, requested_by=_caller(request))
        if status is None:
            return _error(404, f"unknown job {job_id}")
        return JSONResponse(status.as_dict(), status_code=202)

    async def schedule(request: Request) -> Response:
        body = await _body(request, ("trigger_type",))
        trigger_type = body.get("trigger_type", "manual")
        if not isinstance(trigger_type, str):
            return _error(400, "trigger_type must be a string")
        job_id = await manager.schedule_optimization(
            _path_id(request, "worker_id"), trigger_type, requested_by=_caller(request)
        )
        return JSONResponse({"job_id": job_id, "status": "requested"}, status_code=202)

    async def metrics(request: Request) -> Response:
        found = await manager.get_performance_metrics(_path_id(request, "worker_id"))
        return JSONResponse(found.as_dict())

    async def alerts(request: Request) -> Response:
        worker_id = _query_id(request, "worker_id")
        found = await fetch_alerts(manager.pool, worker_id=worker_id, limit=_limit(request))
        return JSONResponse({"alerts": found})

    async def worker_programs(request: Request) -> Response:
        return JSONResponse(
            {"programs": await manager.list_programs(_path_id(request, "worker_id"))}
        )

    async def rollout(request: Request) -> Response:
        return JSONResponse(await manager.rollout(_path_id(request, "worker_id")))

    async def rollout_command(request: Request) -> Response:
        command = request.path_params["command"]
        body = await _body(request, ("version", "reason"))
        answer = await manager.rollout_command(
            _path_id(request, "worker_id"),
            command,
            body.get("version"),
            requested_by=_caller(request),
            reason=body.get("reason"),
        )
        status = 202 if answer["answer"] is None else 200
        if answer["answer"] is not None and answer["answer"]["status"] == "refused":
            status = 409
        return JSONResponse(answer, status_code=status)

    async def rollout_config(request: Request) -> Response:
        changes = await _body(request, ROLLOUT_SETTINGS) if request.method == "POST" else None
        found = await manager.rollout_settings(
            _path_id(request, "worker_id"), changes, updated_by=_caller(request)
        )
        return JSONResponse(found)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        owned: AbstractAsyncContextManager[object] = manager if own_manager else nullcontext()
        async with owned:
            yield

    def route(path: str, handler: Endpoint, *methods: str) -> Route:
        return Route(f"/api/v1{path}", _guarded(handler), methods=list(methods) or None)

    routes = [
        route("/health", health),
        route("/jobs", list_jobs, "GET"),
        route("/jobs", create_job, "POST"),
        route("/jobs/batch", batch, "POST"),
        route("/jobs/{job_id}", get_job),
        route("/jobs/{job_id}/cancel", cancel, "POST"),
        route("/workers/{worker_id}/schedule", schedule, "POST"),
        route("/workers/{worker_id}/metrics", metrics),
        route("/workers/{worker_id}/programs", worker_programs),
        route("/workers/{worker_id}/rollout", rollout),
        route("/workers/{worker_id}/programs/{command:str}", rollout_command, "POST"),
        route("/workers/{worker_id}/rollout/config", rollout_config, "GET", "POST"),
        route("/alerts", alerts),
        *dashboard_routes(
            lambda: manager.pool,
            refresh_s=manager.settings.dashboard_refresh_s,
            jaeger_url=manager.settings.jaeger_url,
        ),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def create_secured_app(
    manager: OptimizationManager, tokens: TokenStore | None = None, *, own_manager: bool = True
) -> ASGIApp:
    """The API behind RBAC (``FLYWHEEL_API_TOKENS``) with every mutation in the audit log
    (``own_manager=False``: the caller has started the manager and closes it)."""
    app = create_app(manager, own_manager=own_manager)
    return HttpMetrics(
        AccessMiddleware(app, tokens or TokenStore.from_env(), AuditLog(lambda: manager.pool))
    )
