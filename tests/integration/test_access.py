"""RBAC middleware on a real Starlette app, with the audit log in the real database."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dspy_flywheel.access import AccessMiddleware, AuditLog, Role, TokenStore, required_role
from dspy_flywheel.access.rbac import SESSION_COOKIE

VIEWER, OPERATOR, ADMIN = "viewer-secret-0123456", "operator-secret-0123", "admin-secret-01234567"
SPEC = f"ann:viewer:{VIEWER},olga:operator:{OPERATOR},ada:admin:{ADMIN}"


async def _ok(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "ok": True,
            "principal": request.scope["state"]["principal"].name
            if request.scope["state"].get("principal")
            else None,
        }
    )


def _app(audit: AuditLog) -> AccessMiddleware:
    routes = [
        Route("/api/v1/health", _ok),
        Route("/api/v1/jobs", _ok, methods=["GET", "POST"]),
        Route("/api/v1/datasets/w/prune", _ok, methods=["POST"]),
    ]
    return AccessMiddleware(Starlette(routes=routes), TokenStore.parse(SPEC), audit)


def test_required_roles() -> None:
    assert required_role("GET", "/api/v1/health") is None
    assert required_role("GET", "/api/v1/jobs") is Role.viewer
    assert required_role("POST", "/api/v1/jobs/batch") is Role.operator
    assert required_role("POST", "/api/v1/datasets/w/prune") is Role.admin
    assert required_role("DELETE", "/anything") is Role.admin


def test_bad_token_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="roles: viewer, operator, admin"):
        TokenStore.parse("x:root:abcdefghijklmnopq")
    with pytest.raises(ValueError, match="too short"):
        TokenStore.parse("x:viewer:short")
    with pytest.raises(ValueError, match="name:role:secret"):
        TokenStore.parse("justatoken")


async def test_roles_are_enforced_and_audited(db_pool: asyncpg.Pool) -> None:
    audit = AuditLog(db_pool)
    before = await db_pool.fetchval("SELECT coalesce(max(id), 0) FROM audit_log")
    transport = httpx.ASGITransport(app=_app(audit))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

        def auth(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        assert (await client.get("/api/v1/health")).status_code == 200
        assert (await client.get("/api/v1/jobs")).status_code == 401
        assert (
            await client.get("/api/v1/jobs", headers=auth("wrong-token-000000"))
        ).status_code == 401
        assert (await client.get("/api/v1/jobs", headers=auth(VIEWER))).status_code == 200
        denied = await client.post("/api/v1/jobs", headers=auth(VIEWER))
        assert denied.status_code == 403
        assert "needs operator" in denied.json()["error"]
        ok = await client.post("/api/v1/jobs", headers=auth(OPERATOR))
        assert ok.status_code == 200
        assert ok.json()["principal"] == "olga"
        assert (
            await client.post("/api/v1/datasets/w/prune", headers=auth(OPERATOR))
        ).status_code == 403
        assert (
            await client.post("/api/v1/datasets/w/prune", headers=auth(ADMIN))
        ).status_code == 200
    rows = await db_pool.fetch(
        "SELECT actor, action, target, details FROM audit_log WHERE id > $1 ORDER BY id", before
    )
    got = [(r["actor"], r["action"], r["target"], r["details"]["status"]) for r in rows]
    assert got == [
        ("anonymous", "denied GET", "/api/v1/jobs", 401),
        ("anonymous", "denied GET", "/api/v1/jobs", 401),
        ("ann", "denied POST", "/api/v1/jobs", 403),
        ("olga", "request POST", "/api/v1/jobs", 200),
        ("olga", "denied POST", "/api/v1/datasets/w/prune", 403),
        ("ada", "request POST", "/api/v1/datasets/w/prune", 200),
    ]


async def test_session_cookie_reads_but_never_changes(db_pool: asyncpg.Pool) -> None:
    transport = httpx.ASGITransport(app=_app(AuditLog(db_pool)))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        client.cookies.set(SESSION_COOKIE, OPERATOR)
        read = await client.get("/api/v1/jobs")
        write = await client.post("/api/v1/jobs")
        client.cookies.set(SESSION_COOKIE, "not-a-known-token-at-all")
        unknown = await client.get("/api/v1/jobs")
    assert read.status_code == 200
    assert read.json()["principal"] == "olga"
    assert write.status_code == 401  # a cookie rides along cross-site: it never authorizes a POST
    assert unknown.status_code == 401
    assert required_role("POST", "/dashboard/login") is None  # signing in needs no token
