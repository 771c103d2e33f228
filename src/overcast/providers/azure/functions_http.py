"""The app's ASGI app behind one HTTP-triggered Azure Function.

``azure.functions.AsgiMiddleware`` does the same job and was compared (see
``docs/clouds/azure_functions.md``); this adapter is used instead because the
middleware gives ``raw_path`` decoded (so ``%2F`` and ``/`` look alike), takes the
response charset from ``Content-Encoding``, polls ``receive()`` every 100 ms after the
body, and, through ``AsgiFunctionApp``, fails every request of an app that does not
speak the ASGI lifespan. Here the lifespan is optional (``auto``), the scope carries
the raw path and the client address, repeated response headers survive (cookies as
cookies, others joined with commas as HTTP allows), and an unhandled error is a logged
500 rather than an exception in the worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit

import azure.functions as func

from ...runtime.http import BAD_REQUEST_BODY, BAD_REQUEST_HEADERS, Headers, forwarded_scheme, is_host, run_http
from ...runtime.lifespan import Lifespan

__all__ = ["AsgiHttpFunction"]

log = logging.getLogger("overcast.azure.functions")

_ASGI = {"version": "3.0", "spec_version": "2.3"}


def _server(host: str | None, scheme: str) -> tuple[str, int]:
    default = 443 if scheme == "https" else 80
    if not host or not is_host(host):
        return ("azurewebsites", default)
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and "]" not in port:
        return (name, int(port))
    return (host, default)


def _ascii(text: str) -> bytes:
    """A URL part as ASGI wants it: ASCII, anything else percent-encoded as UTF-8 (``%`` kept as sent)."""
    if text.isascii():
        return text.encode()
    return quote(text, safe="!#$%&'()*+,/:;=?@[]~", errors="replace").encode()


def _client(forwarded: str) -> str | None:
    """The first address of ``X-Forwarded-For`` (the host appends a port to IPv4 ones)."""
    first = forwarded.split(",")[0].strip()
    if first.startswith("["):
        return first[1:].partition("]")[0] or None
    if first.count(":") == 1:
        first = first.partition(":")[0]
    return first or None


class AsgiHttpFunction:
    """``await fn(req, context)`` runs ``req`` through the app's ASGI app.

    Args:
        asgi: returns the ASGI app (read per request, so telemetry turned on later applies).
        base_path: a prefix to strip from request paths (the host's ``routePrefix``,
            ``/api`` unless ``host.json`` sets it to ``""`` as ``render_project`` does).
        lifespan: run the ASGI lifespan's startup once per worker (``auto``: if the app
            supports it; ``on``: fail when it does not; ``off``).
    """

    def __init__(
        self,
        asgi: Callable[[], Any],
        *,
        base_path: str = "",
        lifespan: Literal["auto", "on", "off"] = "auto",
    ) -> None:
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', got {lifespan!r}")
        self.asgi = asgi
        self.base_path = base_path.rstrip("/")
        self.lifespan = lifespan
        self._lifespan: Lifespan | None = None
        self._starting: asyncio.Lock | None = None

    def scope(self, req: func.HttpRequest, context: Any = None) -> dict[str, Any]:
        """The ASGI scope of ``req``."""
        url = urlsplit(req.url)
        raw = url.path or "/"
        if not raw.isascii():  # text the app can encode again (no lone surrogates)
            raw = raw.encode("utf-8", "replace").decode()
        base = self.base_path
        if base and raw.startswith(base) and (len(raw) == len(base) or raw[len(base)] == "/"):
            raw = raw[len(base) :] or "/"
        headers: Headers = []
        lookup = req.headers
        for name, value in lookup.items():
            headers.append((name.lower().encode("latin-1"), value.encode("latin-1", "replace")))
        scheme = forwarded_scheme(lookup.get("x-forwarded-proto") or url.scheme)
        forwarded = lookup.get("x-forwarded-for")
        client = _client(forwarded) if forwarded else None
        return {
            "type": "http",
            "asgi": _ASGI,
            "http_version": "1.1",
            "method": req.method,
            "scheme": scheme,
            "path": unquote(raw) if "%" in raw else raw,
            "raw_path": _ascii(raw),
            "query_string": _ascii(url.query),
            "root_path": "",
            "headers": headers,
            "client": (client, 0) if client else None,
            "server": _server(lookup.get("host") or url.netloc, scheme),
            "azure_functions.invocation_id": getattr(context, "invocation_id", None),
            "azure_functions.function_name": getattr(context, "function_name", None),
        }

    async def __call__(self, req: func.HttpRequest, context: Any = None) -> func.HttpResponse:
        host = req.headers.get("host")
        if host is not None and not is_host(host):  # as the host's own server answers one (RFC 9112)
            log.warning("request with Host %.60r answered 400", host)
            return _response(400, list(BAD_REQUEST_HEADERS), BAD_REQUEST_BODY)
        asgi = self.asgi()
        scope = self.scope(req, context)
        if self.lifespan != "off":
            started = self._lifespan
            if started is None:
                started = await self._start(asgi)
            if started.state is not None:
                scope["state"] = started.state.copy()
        rid = getattr(context, "invocation_id", None)
        body = req.get_body() or b""
        if body and "content-length" not in req.headers and "transfer-encoding" not in req.headers:
            # WSGI apps (through a2wsgi) read only as much body as Content-Length says.
            scope["headers"].append((b"content-length", str(len(body)).encode()))
        status, headers, payload = await run_http(asgi, scope, body, rid, log=log)
        return _response(status, headers, payload)

    async def _start(self, asgi: Any) -> Lifespan:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:  # two first requests at once start the app once
            if self._lifespan is None:
                started = Lifespan(asgi, mode="on" if self.lifespan == "on" else "auto")
                await started.startup()
                self._lifespan = started
            return self._lifespan

    async def shutdown(self) -> None:
        """Run the lifespan's shutdown, if it started (for tests and graceful stops)."""
        if self._lifespan is not None:
            await self._lifespan.shutdown()
            self._lifespan = None


def _response(status: int, headers: Headers, body: bytes) -> func.HttpResponse:
    """A ``func.HttpResponse``; repeated headers joined with commas, except ``Set-Cookie``."""
    merged: dict[str, str] = {}
    cookies: list[str] = []
    content_type = None
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name == "set-cookie":
            cookies.append(value)
        elif name in merged:
            merged[name] = f"{merged[name]}, {value}"
        else:
            merged[name] = value
            if name == "content-type":
                content_type = value
    response = func.HttpResponse(body, status_code=status, headers=merged, mimetype=content_type)
    for cookie in cookies:
        response.headers.add("Set-Cookie", cookie)
    return response
