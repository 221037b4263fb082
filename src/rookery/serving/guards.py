"""Checks every request passes before any route runs (pure ASGI middleware: nothing of the body is read).

* `HostCheck`: the Host header must name this server (settings.hosts(): ROOKERY_ALLOWED_HOSTS, or localhost,
  127.0.0.1, ::1 and the bind address), so a page on another site cannot reach a loopback server through DNS
  rebinding (its requests carry the attacker's host name). 400 otherwise. Starlette's TrustedHostMiddleware does
  the same but cuts `[::1]:8000` at the first colon, so IPv6 hosts never match there.
* `SameOrigin`: a state-changing request (POST, PUT, PATCH, DELETE) sent by a browser from another origin is
  refused (403): its Origin (or Referer) must be this server, and Sec-Fetch-Site must not be cross-site. Clients
  that are not browsers send neither header and pass; the page's own fetches are same-origin.
* `ApiKeyGate`: with ROOKERY_API_KEY set, /api/ and /invocations answer 401 before the body is read (FastAPI reads
  a form body before it runs the route's dependencies, so an unauthenticated client could make the server read
  and spool 100 MB). The routes keep their `require_api_key` dependency: it documents the key in the OpenAPI
  schema and checks it again.
* `SecurityHeaders`: nosniff, a referrer policy and, on HTML pages, a strict Content-Security-Policy.
"""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import urlsplit

PROTECTED_PREFIXES = ("/api/", "/invocations")
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def host_name(host_header: str) -> str:
    """The host of a Host header, without its port; an IPv6 literal keeps no brackets: `[::1]:8000` -> `::1`."""
    text = host_header.strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


async def send_json(send: Any, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    all_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": all_headers + (headers or [])})
    await send({"type": "http.response.body", "body": body})


class HostCheck:
    def __init__(self, app: Any, hosts: list[str]) -> None:
        self.app = app
        self.any = "*" in hosts
        self.hosts = {host_name(h) for h in hosts if h != "*"}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or self.any:
            await self.app(scope, receive, send)
            return
        host = host_name(_header(scope, b"host") or "")
        if host not in self.hosts:
            shown = host[:80] or "none"
            detail = f"this server does not answer to the host {shown!r} (ROOKERY_ALLOWED_HOSTS lists those it does)"
            await send_json(send, 400, detail)
            return
        await self.app(scope, receive, send)


class SameOrigin:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in _UNSAFE_METHODS or self._same_origin(scope):
            await self.app(scope, receive, send)
            return
        await send_json(send, 403, "a state-changing request from another site is refused (cross-origin)")

    @staticmethod
    def _same_origin(scope: dict[str, Any]) -> bool:
        if (_header(scope, b"sec-fetch-site") or "").lower() == "cross-site":
            return False
        source = _header(scope, b"origin") or _header(scope, b"referer")
        if source is None:
            return True  # not a browser (curl, scripts, MLflow clients): nothing to forge
        if source == "null":
            return False  # sandboxed frames, file:// pages, redirects across sites
        parts = urlsplit(source)
        host = _header(scope, b"host") or ""
        return bool(parts.netloc) and parts.netloc.lower() == host.strip().lower()


class ApiKeyGate:
    def __init__(self, app: Any, key: str | None) -> None:
        self.app = app
        self.key = key.encode() if key else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or self.key is None or not path.startswith(PROTECTED_PREFIXES):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" or self._carries_key(scope):
            await self.app(scope, receive, send)
            return
        detail = "this API needs a key: send it as the X-API-Key header or as 'Authorization: Bearer <key>'"
        await send_json(send, 401, detail, [(b"www-authenticate", b"Bearer")])

    def _carries_key(self, scope: dict[str, Any]) -> bool:
        assert self.key is not None
        given = [_header(scope, b"x-api-key")]
        auth = _header(scope, b"authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer":
            given.append(token.strip())
        return any(g is not None and secrets.compare_digest(g.encode(), self.key) for g in given)


class SecurityHeaders:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope.get("path", "").startswith("/docs")

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html") and not docs:
                    extra.append((b"content-security-policy", CSP.encode()))
                    extra.append((b"x-frame-options", b"DENY"))
                headers += [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
