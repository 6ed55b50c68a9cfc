"""ASGI middleware of the operator API: authenticate, authorize, cap, audit, then run.

In order, for every HTTP request:

1. authenticate the bearer token (memory only) and authorize the route (``rbac``): 401/403,
   each refusal audited as far as the database allows (it never turns a 401 into a 500);
2. refuse NUL characters in the path or query (400) and bodies over ``max_body_bytes`` (413);
3. for a mutation (anything but GET/HEAD/OPTIONS): write its audit row first; if that fails
   the call does not run and gets 503, so nothing happens without its row;
4. run the app; an exception becomes a 500 (logged); the audit row gets the final status,
   the body's size and SHA-256, and the error message or response.

The actor is always the authenticated principal; the app reads it from
``scope["state"]["principal"]``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from typing import Any
from urllib.parse import unquote_to_bytes

from dspy_flywheel.access.audit import AuditLog, AuditUnavailable
from dspy_flywheel.access.rbac import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    TokenStore,
    cookie_bearer,
    required_role,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
_READS = ("GET", "HEAD", "OPTIONS")
_KEPT_RESPONSE_CHARS = 2000


class _TooLarge(Exception):
    pass


class AccessMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        tokens: TokenStore,
        audit: AuditLog | None = None,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.audit = audit
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        needed = required_role(method, path)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        principal = self.tokens.authenticate(
            headers.get("authorization") or cookie_bearer(method, headers.get("cookie", ""))
        )
        actor = principal.name if principal else "anonymous"
        if needed is not None and principal is None:
            message = "missing or unknown API token (Authorization: Bearer ...)"
            return await self._refuse(send, actor, method, path, 401, message)
        if needed is not None and principal is not None and principal.role < needed:
            message = f"role {principal.role.name} may not {method} {path}; needs {needed.name}"
            return await self._refuse(send, actor, method, path, 403, message)
        if "\x00" in path or b"\x00" in unquote_to_bytes(scope.get("query_string", b"")):
            message = "the path or query contains a NUL character"
            return await self._refuse(
                send, actor, method, path.replace("\x00", "\\x00"), 400, message
            )
        try:
            body = await _read_body(receive, headers, self.max_body_bytes)
        except _TooLarge:
            message = f"request body over {self.max_body_bytes:,} bytes"
            return await self._refuse(send, actor, method, path, 413, message)
        scope.setdefault("state", {})["principal"] = principal
        if method in _READS:
            await self._run(scope, body, send, None)
            return
        row_id = None
        if self.audit is not None:
            details = {"body_bytes": len(body), "body_sha256": hashlib.sha256(body).hexdigest()}
            try:
                row_id = await self.audit.begin(actor, f"request {method}", path, details)
            except AuditUnavailable:
                await reply(send, 503, "audit log unavailable (database unreachable); nothing done")
                return
        outcome = await self._run(scope, body, send, row_id)
        if self.audit is not None and row_id is not None:
            await self.audit.finish(row_id, outcome)

    async def _run(
        self, scope: Scope, body: bytes, send: Send, row_id: int | None
    ) -> dict[str, Any]:
        """Run the app on the buffered body; the outcome for the audit row."""
        status: list[int] = []
        kept: list[bytes] = []

        async def replay() -> Message:
            nonlocal body
            chunk, body = body, b""
            return {"type": "http.request", "body": chunk, "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            elif message["type"] == "http.response.body" and row_id is not None:
                kept.append(bytes(message.get("body", b""))[:_KEPT_RESPONSE_CHARS])
            await send(message)

        try:
            await self.app(scope, replay, capture)
        except Exception:
            log.exception("%s %s failed", scope["method"], scope["path"])
            if not status:  # else the response is already on its way: only the row can tell
                await reply(capture, 500, "internal error; see the service log")
            return {"status": 500, "error": "internal error"}
        text = b"".join(kept)[:_KEPT_RESPONSE_CHARS].decode(errors="replace").replace("\x00", "")
        outcome: dict[str, Any] = {"status": status[0] if status else 500}
        try:
            outcome["response"] = json.loads(text) if text else None
        except ValueError:
            outcome["response"] = text
        return outcome

    async def _refuse(
        self, send: Send, actor: str, method: str, path: str, status: int, message: str
    ) -> None:
        """Answer ``status``; one audit row per refusal, if the database allows (it never
        changes the answer)."""
        if self.audit is not None:
            action = "denied" if status in (401, 403) else "refused"
            with contextlib.suppress(AuditUnavailable):  # AuditLog logs it
                await self.audit.record(actor, f"{action} {method}", path, {"status": status})
        await reply(send, status, message)


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length", "")
    if declared.isdigit() and (len(declared) > 15 or int(declared) > limit):
        raise _TooLarge
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def reply(send: Send, status: int, message: str) -> None:
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
