"""One HTTP request through an ASGI app, buffered: a scope and a body in, status, headers and
body out. For runtimes whose platform hands over a whole request and wants a whole reply
(Lambda, Azure Functions); a server (uvicorn) streams instead.

An unhandled error becomes a bare 500 (no traceback leaves the process), logged with the
request's id and counted as the invocation's error; so does an app that sends no response.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..telemetry.runtime import http_error

# asyncio is imported when a request first waits for its disconnect, not here: this module
# is part of a Lambda's cold start, and an HTTP app's framework usually brings asyncio anyway.
if TYPE_CHECKING:
    import asyncio

__all__ = [
    "BAD_REQUEST_BODY",
    "BAD_REQUEST_HEADERS",
    "ERROR_BODY",
    "ERROR_HEADERS",
    "Headers",
    "forwarded_scheme",
    "is_host",
    "run_http",
]

Headers = list[tuple[bytes, bytes]]
Scope = dict[str, Any]

BAD_REQUEST_BODY = b"Bad Request"
BAD_REQUEST_HEADERS: Headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"11")]
ERROR_BODY = b"Internal Server Error"
ERROR_HEADERS: Headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")]

_log = logging.getLogger("overcast.http")

#: a Host: a name or IPv4 address (printable ASCII but URL delimiters) or a bracketed IPv6 one, and a port
_HOST = re.compile(r"(?:[A-Za-z0-9!$&'()*+,;=%<>\"{}|^`._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{0,5})?")


def is_host(value: str) -> bool:
    """Whether ``value`` can be a ``Host`` header (RFC 9112 answers 400 to a request whose Host is not):
    frameworks build the request's URL from it, and one that is no host breaks URL parsing."""
    return _HOST.fullmatch(value) is not None


_PLAIN_SCHEMES: dict[str | bytes, str] = {b"https": "https", b"http": "http", "https": "https", "http": "http"}


def forwarded_scheme(value: str | bytes | None, default: str = "https") -> str:
    """The scheme a proxy's ``X-Forwarded-Proto`` names (its first value): ``http`` or ``https``;
    anything else is no scheme (frameworks look its default port up) and gives ``default``."""
    plain = _PLAIN_SCHEMES.get(value)  # type: ignore[arg-type]
    if plain is not None:  # what a proxy almost always sends
        return plain
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    first = (value or "").split(",", 1)[0].strip().lower()
    return first if first in ("http", "https") else default


def _error() -> tuple[int, Headers, bytes]:
    return 500, list(ERROR_HEADERS), ERROR_BODY


class _Exchange:
    """The ``receive`` and ``send`` of one buffered request, and what the app sent."""

    __slots__ = ("body", "chunks", "complete", "disconnected", "headers", "requested", "status")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.status = 0
        self.headers: Headers = []
        self.chunks: list[bytes] = []
        self.complete = False
        self.requested = False
        self.disconnected: asyncio.Future[None] | None = None

    async def receive(self) -> dict[str, Any]:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        # After the body, a client stays connected until the response is complete.
        if not self.complete:
            if self.disconnected is None:
                import asyncio

                self.disconnected = asyncio.get_running_loop().create_future()
            await self.disconnected
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.body" and self.status and not self.complete:
            chunk = message.get("body", b"")
            if chunk:
                self.chunks.append(chunk)
            if not message.get("more_body", False):
                self.complete = True
                if self.disconnected is not None and not self.disconnected.done():
                    self.disconnected.set_result(None)
        elif kind == "http.response.start" and self.status == 0:
            self.status = message["status"]
            self.headers = list(message.get("headers") or [])
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    def reply(self) -> tuple[int, Headers, bytes]:
        chunks = self.chunks
        return self.status, self.headers, chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def run_http(
    asgi: Callable[..., Any],
    scope: Scope,
    body: bytes,
    request_id: str | None = None,
    *,
    log: logging.Logger = _log,
    errors: deque[int] | None = None,
) -> tuple[int, Headers, bytes]:
    """Run one request through ``asgi`` and return its ``(status, headers, body)``.

    Args:
        request_id: named in the log line of a failure.
        log: the runtime's logger.
        errors: the series an error is counted in (a runtime that counts its invocations
            itself); by default, the error of the invocation under way.
    """
    exchange = _Exchange(body)
    try:
        await asgi(scope, exchange.receive, exchange.send)
    except Exception:
        log.exception(
            "%s %s failed (request %s)",
            scope.get("method"),
            scope.get("path"),
            request_id,
            extra={"request_id": request_id},
        )
        _count_error(errors)
        if not exchange.complete:
            return _error()
    if exchange.status == 0:
        log.error("%s %s sent no response (request %s)", scope.get("method"), scope.get("path"), request_id)
        _count_error(errors)
        return _error()
    return exchange.reply()


def _count_error(errors: deque[int] | None) -> None:
    if errors is not None:
        errors.append(1)
    else:
        http_error()
