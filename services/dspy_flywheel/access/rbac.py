"""Role-based access for the manager API.

Tokens come from ``FLYWHEEL_API_TOKENS="name:role:secret,name2:role2:secret2"``; only their
SHA-256 digests are kept in memory. Roles are ordered: ``viewer`` < ``operator`` < ``admin``.

    viewer    read: GET anything (jobs, metrics, programs, dashboard)
    operator  + request/cancel/batch optimizations, change trigger config, promote / roll
              back / pin / unpin program versions and change canary settings
    admin     + dataset export/import/prune, everything else

A browser signs in at ``/dashboard/login`` with its token, kept in an HttpOnly cookie that
authorizes GET/HEAD only (the dashboard is read-only; changes need the header).

With no tokens configured, access is refused (HTTP 401) unless ``FLYWHEEL_API_AUTH=disabled``,
which is meant for a loopback-only development setup and logs a warning at start.
Authentication needs no database: an unknown caller gets 401 whatever state PostgreSQL is in.
The ASGI middleware that applies this (and writes the audit log) is ``access.middleware``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from enum import IntEnum
from http.cookies import CookieError, SimpleCookie
from typing import Any

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
_OPEN_PATHS = ("/api/v1/health", "/dashboard/login")
SESSION_COOKIE = "flywheel_token"  # set by /dashboard/login; read-only requests only


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


def cookie_bearer(method: str, cookie_header: str) -> str | None:
    """A browser's session cookie as a bearer token, for GET/HEAD only: a cookie rides along on
    cross-site requests, so it never authorizes a change."""
    if method not in ("GET", "HEAD"):
        return None
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(cookie_header)
    except CookieError:
        return None
    morsel = cookies.get(SESSION_COOKIE)
    return f"Bearer {morsel.value}" if morsel else None
