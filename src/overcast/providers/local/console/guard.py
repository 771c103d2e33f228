"""What keeps the console a local tool: loopback clients, loopback Host and Origin, a CSRF token.

A web page on another site cannot reach the console: its requests carry a foreign
``Origin`` (refused), and a DNS-rebinding page that makes its own name resolve to
127.0.0.1 still sends its own name as ``Host`` (refused). State-changing requests also
carry a per-session token (double-submit: a ``SameSite=Strict`` cookie set by the console
and the same value in the form or the ``X-Overcast-Token`` header), which a foreign page
can neither read nor set.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["COOKIE", "HEADER", "LocalOnly", "is_loopback_host", "new_token", "token_matches"]

COOKIE = "overcast_console_token"
HEADER = "x-overcast-token"
#: what every console reply carries unless it says otherwise: no framing, no script but its own
SECURITY_HEADERS = (
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # no-referrer would make a form's Origin "null"
    (b"cache-control", b"no-store"),
)

Scope = MutableMapping[str, Any]
ASGI = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or address, without port) is this machine's loopback."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_of(authority: str) -> str:
    """``example.com`` from ``example.com:8000``, ``::1`` from ``[::1]:8000``."""
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else authority
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def refusal(scope: Scope) -> str | None:
    """Why this request may not reach the console, or None when it may."""
    client = scope.get("client")
    if client is not None and not is_loopback_host(str(client[0])):
        return f"the console answers this machine only, not {client[0]}"
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    host = headers.get("host", "")
    if not is_loopback_host(_host_of(host)):
        return f"Host {host!r} is not a loopback name (DNS rebinding?); open the console at 127.0.0.1 or localhost"
    origin = headers.get("origin")
    if origin is not None and (origin == "null" or not is_loopback_host(urlsplit(origin).hostname or "")):
        return f"Origin {origin!r} is not this machine; the console takes requests from its own pages only"
    if headers.get("sec-fetch-site") == "cross-site":
        return "a cross-site request; the console takes requests from its own pages only"
    return None


class LocalOnly:
    """ASGI middleware: refuse (403) every request :func:`refusal` objects to, before the console sees it."""

    def __init__(self, app: ASGI) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
    ) -> None:
        reason = refusal(scope) if scope["type"] in ("http", "websocket") else None
        if reason is None:
            await self.app(scope, receive, _with_security_headers(send))
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = f"403 Forbidden: {reason}\n".encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _with_security_headers(send: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    async def sending(message: Any) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(name, value) for name, value in SECURITY_HEADERS if name not in present]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_matches(cookie: str | None, given: str | None) -> bool:
    """Whether the token sent with a form or header is the session's (compared in constant time)."""
    return bool(cookie) and bool(given) and hmac.compare_digest(str(cookie), str(given))
