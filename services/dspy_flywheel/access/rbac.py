"""Role-based access for the manager API.

Tokens come from ``FLYWHEEL_API_TOKENS="name:role:secret,name2:role2:secret2"``; only their
SHA-256 digests are kept in memory. Roles are ordered: ``viewer`` < ``operator`` < ``admin``.

    viewer    read: GET anything (jobs, metrics, programs, dashboard)
    operator  + request/cancel/batch optimizations, change trigger config
    admin     + dataset export/import/prune, program pin/rollback, everything else

With no tokens configured, access is refused (HTTP 401) unless ``FLYWHEEL_API_AUTH=disabled``,
which is meant for a loopback-only development setup and logs a warning at start.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from dspy_flywheel.access.audit import AuditLog

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Role(IntEnum):
    viewer = 1
    operator = 2
    admin = 3


ROLES = tuple(r.name for r in Role)

# (method, path prefix) -> role; first match wins; paths not listed need admin when mutating.
_RULES: tuple[tuple[str, str, Role], ...] = (
    ("GET", "/", Role.viewer),
    ("HEAD", "/", Role.viewer),
    ("POST", "/api/v1/jobs", Role.operator),
    ("POST", "/api/v1/workers/", Role.operator),
    ("PUT", "/api/v1/triggers/", Role.operator),
)
_OPEN_PATHS = ("/api/v1/health",)


def required_role(method: str, path: str) -> Role | None:
    """The least role allowed to call ``method path``; None for public paths."""
    if path in _OPEN_PATHS:
        return None
    for rule_method, prefix, role in _RULES:
        if method == rule_method and path.startswith(prefix):
            return role
    return Role.admin


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class TokenStore:
    def __init__(self, tokens: dict[bytes, Principal], *, auth_disabled: bool = False) -> None:
        self._tokens = tokens
        self.auth_disabled = auth_disabled

    @classmethod
    def parse(cls, spec: str, *, auth_disabled: bool = False) -> TokenStore:
        tokens: dict[bytes, Principal] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            name, sep, rest = item.partition(":")
            role, sep2, secret = rest.partition(":")
            if not (sep and sep2 and name and secret):
                raise ValueError("FLYWHEEL_API_TOKENS entries are name:role:secret")
            if role not in ROLES:
                raise ValueError(
                    f"unknown role {role!r} for token {name!r}; roles: {', '.join(ROLES)}"
                )
            if len(secret) < 16:
                raise ValueError(f"token {name!r} is too short (at least 16 characters)")
            tokens[_digest(secret)] = Principal(name, Role[role])
        return cls(tokens, auth_disabled=auth_disabled)

    @classmethod
    def from_env(cls) -> TokenStore:
        disabled = os.environ.get("FLYWHEEL_API_AUTH", "").lower() == "disabled"
        store = cls.parse(os.environ.get("FLYWHEEL_API_TOKENS", ""), auth_disabled=disabled)
        if disabled:
            log.warning("API authentication is DISABLED (FLYWHEEL_API_AUTH=disabled)")
        return store

    def authenticate(self, authorization: str | None) -> Principal | None:
        if self.auth_disabled:
            return Principal("anonymous", Role.admin)
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        digest = _digest(authorization[7:].strip())
        for known, principal in self._tokens.items():
            if hmac.compare_digest(known, digest):
                return principal
        return None


class AccessMiddleware:
    """ASGI middleware: authenticate, authorize by route, audit every mutation and refusal."""

    def __init__(self, app: ASGIApp, tokens: TokenStore, audit: AuditLog | None = None) -> None:
        self.app = app
        self.tokens = tokens
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        needed = required_role(method, path)
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        principal = self.tokens.authenticate(headers.get("authorization"))
        if needed is not None and principal is None:
            await self._audit("anonymous", "denied", method, path, 401)
            await _reply(send, 401, "missing or unknown API token (Authorization: Bearer ...)")
            return
        if needed is not None and principal is not None and principal.role < needed:
            await self._audit(principal.name, "denied", method, path, 403)
            await _reply(
                send,
                403,
                f"role {principal.role.name} may not {method} {path}; needs {needed.name}",
            )
            return
        scope.setdefault("state", {})["principal"] = principal
        status: list[int] = []

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        await self.app(scope, receive, send_wrapper)
        if method not in ("GET", "HEAD", "OPTIONS"):
            actor = principal.name if principal else "anonymous"
            await self._audit(actor, "request", method, path, status[0] if status else 500)

    async def _audit(self, actor: str, action: str, method: str, path: str, status: int) -> None:
        if self.audit is not None:
            await self.audit.record(actor, f"{action} {method}", path, {"status": status})


async def _reply(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
