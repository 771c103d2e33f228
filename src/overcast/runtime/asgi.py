"""ASGI glue: any ASGI or WSGI app becomes one ASGI callable."""

from __future__ import annotations

import inspect
from typing import Any

from ..errors import ConfigError

__all__ = ["as_asgi", "is_asgi"]


def is_asgi(app: Any) -> bool:
    """ASGI 3 apps are coroutine functions of (scope, receive, send); WSGI ones are plain callables."""
    if inspect.iscoroutinefunction(app):
        return True
    return inspect.iscoroutinefunction(type(app).__call__) if callable(app) else False


def as_asgi(app: Any, *, name: str = "app") -> Any:
    """Return ``app`` if it is ASGI, else wrap the WSGI app with a2wsgi (threads, streamed bodies)."""
    if app is None:
        raise ConfigError(f"{name}: no HTTP app; call app.http(your_asgi_or_wsgi_app)")
    if is_asgi(app):
        return app
    from a2wsgi import WSGIMiddleware

    return WSGIMiddleware(app)
