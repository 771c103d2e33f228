"""Overcast's errors as HTTP replies: bad input is a 4xx with its message, not a 500.

An operation on a resource raises the same :mod:`overcast.errors` on every provider, so
one mapping serves every cloud::

    from fastapi import FastAPI
    from overcast.http_errors import install

    api = FastAPI()
    install(api)  # or Starlette(exception_handlers=overcast.http_errors.exception_handlers())

=====================  ======  ============================================================
error                  status  body (``application/problem+json``, RFC 9457)
=====================  ======  ============================================================
``InvalidArgument``    422     the message: which resource, which key, which limit
``NotFound``           404     the message
``Conflict``           409     the message
``Throttled``          429     ``Retry-After`` set; the message names the resource only
``Unavailable``        503     ``Retry-After`` set; the message names the resource only
anything else          500     a generic message; the error is logged with its traceback
=====================  ======  ============================================================

Replies of the 5xx and 429 kind never carry the provider's own message (an endpoint, a
table's full name): the client learns which resource failed, the log learns why.
Frameworks other than Starlette and FastAPI can use :func:`problem` directly.
"""

from __future__ import annotations

import logging
from typing import Any

from .errors import (
    ConfigError,
    Conflict,
    InvalidArgument,
    NotFound,
    OvercastError,
    ProviderError,
    Throttled,
    Unavailable,
)

__all__ = ["exception_handlers", "install", "problem", "status_of"]

log = logging.getLogger("overcast.http")

_STATUS: tuple[tuple[type[OvercastError], int, str], ...] = (
    (InvalidArgument, 422, "Unprocessable Content"),
    (NotFound, 404, "Not Found"),
    (Conflict, 409, "Conflict"),
    (Throttled, 429, "Too Many Requests"),
    (Unavailable, 503, "Service Unavailable"),
)


def status_of(exc: BaseException) -> int:
    """The HTTP status an error is answered with (500 for anything not in the table)."""
    for kind, status, _ in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def problem(exc: BaseException, *, retry_after: int = 1) -> tuple[int, dict[str, str], dict[str, Any]]:
    """``(status, headers, body)`` of the reply to ``exc``: an RFC 9457 problem document."""
    status = status_of(exc)
    title = next((text for kind, code, text in _STATUS if code == status), "Internal Server Error")
    headers = {"content-type": "application/problem+json"}
    resource = exc.resource if isinstance(exc, ProviderError) else None
    if status in (429, 503):
        headers["retry-after"] = str(retry_after)
        what = f"{resource!r}" if resource else "a resource"
        detail = f"{what} is {'throttled' if status == 429 else 'unavailable'} now; retry later"
    elif status == 500:
        detail = "the request failed inside the app; the server's log says why"
    else:
        detail = str(exc)
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if resource and status != 500:
        body["resource"] = resource
    return status, headers, body


async def _starlette_handler(request: Any, exc: Exception) -> Any:
    from starlette.responses import JSONResponse

    status, headers, body = problem(exc)
    if status >= 500:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


def exception_handlers() -> dict[type[BaseException], Any]:
    """Starlette's ``exception_handlers=`` for every Overcast error."""
    return {OvercastError: _starlette_handler}


def install(app: Any) -> Any:
    """Answer every Overcast error raised by ``app`` (Starlette or FastAPI) as the table
    above says; returns ``app``."""
    add = getattr(app, "add_exception_handler", None)
    if add is None:
        raise ConfigError(
            f"install() takes a Starlette or FastAPI app, got {type(app).__name__}; use problem() instead"
        )
    add(OvercastError, _starlette_handler)
    return app
