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
    GET  /api/v1/alerts?worker_id=&limit=   the trigger's alerts, newest first
    GET  /api/v1/dashboard   and   GET /dashboard (HTML)

``create_secured_app`` puts the routes behind API tokens with roles and writes the audit log
(see ``dspy_flywheel.access``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dspy_flywheel.access import AccessMiddleware, AuditLog, TokenStore
from dspy_flywheel.access.rbac import ASGIApp
from dspy_flywheel.compile.errors import OptimizerConfigError
from dspy_flywheel.dashboard import dashboard_routes
from dspy_flywheel.manager.core import ManagerError, OptimizationManager
from dspy_flywheel.trigger.store import fetch_alerts

log = logging.getLogger(__name__)
Endpoint = Callable[[Request], Awaitable[Response]]
_CONFIG_KEYS = ("optimizer", "params", "program_ref", "metric_ref")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, json.JSONDecodeError) as exc:
        raise ManagerError(f"request body must be JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ManagerError("request body must be a JSON object")
    return body


def _limit(request: Request) -> int:
    """The ``limit`` query parameter (default 50), clamped to 1..500."""
    try:
        limit = int(request.query_params.get("limit", "50"))
    except ValueError:
        raise ManagerError("limit must be an integer") from None
    return min(max(limit, 1), 500)


def _guarded(handler: Endpoint) -> Endpoint:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except (ManagerError, OptimizerConfigError) as exc:
            return _error(400, str(exc))

    return wrapped


def create_app(manager: OptimizationManager, *, own_manager: bool = False) -> Starlette:
    """The API over ``manager``; with ``own_manager`` the app starts and closes it."""

    async def health(_: Request) -> Response:
        await manager.pool.fetchval("SELECT 1")
        return JSONResponse({"status": "ok"})

    async def list_jobs(request: Request) -> Response:
        q = request.query_params
        found = await manager.list_jobs(
            worker_id=q.get("worker_id"), status=q.get("status"), limit=_limit(request)
        )
        return JSONResponse({"jobs": [j.as_dict() for j in found]})

    async def create_job(request: Request) -> Response:
        body = await _body(request)
        worker_id = body.get("worker_id")
        if not isinstance(worker_id, str) or not worker_id:
            return _error(400, "worker_id (string) is required")
        config = {k: body[k] for k in _CONFIG_KEYS if k in body}
        by = str(body.get("requested_by", "api"))
        job_id = await manager.execute_optimization(worker_id, config, requested_by=by)
        return JSONResponse({"job_id": job_id, "status": "requested"}, status_code=202)

    async def batch(request: Request) -> Response:
        body = await _body(request)
        workers = body.get("worker_ids")
        if not isinstance(workers, list) or not all(isinstance(w, str) for w in workers):
            return _error(400, "worker_ids (list of strings) is required")
        config = {k: body[k] for k in _CONFIG_KEYS if k in body}
        by = str(body.get("requested_by", "api"))
        job_ids = await manager.batch_optimize(workers, config, requested_by=by)
        return JSONResponse({"jobs": job_ids}, status_code=202)

    async def get_job(request: Request) -> Response:
        status = await manager.get_optimization_status(request.path_params["job_id"])
        if status is None:
            return _error(404, f"unknown job {request.path_params['job_id']}")
        return JSONResponse(status.as_dict())

    async def cancel(request: Request) -> Response:
        status = await manager.cancel(request.path_params["job_id"], requested_by="api")
        if status is None:
            return _error(404, f"unknown job {request.path_params['job_id']}")
        return JSONResponse(status.as_dict(), status_code=202)

    async def schedule(request: Request) -> Response:
        body = await _body(request) if await request.body() else {}
        job_id = await manager.schedule_optimization(
            request.path_params["worker_id"],
            str(body.get("trigger_type", "manual")),
            requested_by="api",
        )
        return JSONResponse({"job_id": job_id, "status": "requested"}, status_code=202)

    async def metrics(request: Request) -> Response:
        found = await manager.get_performance_metrics(request.path_params["worker_id"])
        return JSONResponse(found.as_dict())

    async def alerts(request: Request) -> Response:
        worker_id = request.query_params.get("worker_id")
        found = await fetch_alerts(manager.pool, worker_id=worker_id, limit=_limit(request))
        return JSONResponse({"alerts": found})

    async def worker_programs(request: Request) -> Response:
        return JSONResponse(
            {"programs": await manager.list_programs(request.path_params["worker_id"])}
        )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if own_manager:
            await manager.start()
        try:
            yield
        finally:
            if own_manager:
                await manager.close()

    routes = [
        Route("/api/v1/health", health),
        Route("/api/v1/jobs", _guarded(list_jobs), methods=["GET"]),
        Route("/api/v1/jobs", _guarded(create_job), methods=["POST"]),
        Route("/api/v1/jobs/batch", _guarded(batch), methods=["POST"]),
        Route("/api/v1/jobs/{job_id}", _guarded(get_job)),
        Route("/api/v1/jobs/{job_id}/cancel", _guarded(cancel), methods=["POST"]),
        Route("/api/v1/workers/{worker_id}/schedule", _guarded(schedule), methods=["POST"]),
        Route("/api/v1/workers/{worker_id}/metrics", _guarded(metrics)),
        Route("/api/v1/workers/{worker_id}/programs", _guarded(worker_programs)),
        Route("/api/v1/alerts", _guarded(alerts)),
        *dashboard_routes(lambda: manager.pool),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def create_secured_app(manager: OptimizationManager, tokens: TokenStore | None = None) -> ASGIApp:
    """The API behind RBAC (``FLYWHEEL_API_TOKENS``) with every mutation in the audit log."""
    app = create_app(manager, own_manager=True)
    return AccessMiddleware(app, tokens or TokenStore.from_env(), AuditLog(lambda: manager.pool))
