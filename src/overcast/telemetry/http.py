"""ASGI middleware: a server span per request, invocation counts, and the upstream calls
each request made (for ``overcast dev``'s per-request summary). A pass-through while off."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import _state
from .propagation import server_span

__all__ = ["RequestSummary", "TelemetryMiddleware"]


class RequestSummary:
    """What one request did: method, path, status, seconds, and its upstream calls."""

    __slots__ = ("calls", "method", "path", "seconds", "status")

    def __init__(
        self, method: str, path: str, status: int, seconds: float, calls: list[tuple[str, str, str, str, float]]
    ) -> None:
        self.method, self.path, self.status, self.seconds, self.calls = method, path, status, seconds, calls

    def render(self) -> str:
        head = f"{self.method} {self.path} {self.status} {self.seconds * 1000:.1f} ms"
        if not self.calls:
            return head
        parts = [
            f"{upstream} {operation} {resource} {seconds * 1000:.1f} ms" + ("" if outcome == "ok" else f" {outcome}")
            for upstream, operation, resource, outcome, seconds in self.calls
        ]
        return head + " | " + ", ".join(parts)


class TelemetryMiddleware:
    def __init__(self, app: Any, *, on_request: Callable[[RequestSummary], None] | None = None) -> None:
        self.app = app
        self.on_request = on_request

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not _state.ENABLED or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        listener = self.on_request or _state.request_listener
        if _state.invocation.get() is not None and listener is None and _state.instruments.tracer is None:
            await self.app(scope, receive, send)  # the runtime counts this invocation
            return
        from . import count

        counted = _state.invocation.get() is None
        calls: list[tuple[str, str, str, str, float]] | None = [] if listener is not None else None
        token = _state.request_calls.set(calls) if calls is not None else None
        tracer = _state.instruments.tracer
        status = 500
        if counted:
            count("invocations", handler="http")
        start = time.perf_counter()
        try:
            capture = _Status(send)
            try:
                if tracer is None:
                    await self.app(scope, receive, capture)
                else:
                    await self._traced(scope, receive, capture)
            finally:
                status = capture.status
        except BaseException:
            if counted:
                count("errors", handler="http")
            raise
        else:
            if status >= 500 and counted:
                count("errors", handler="http")
        finally:
            if counted:
                _state.handled("http", time.perf_counter() - start)
            if token is not None:
                _state.request_calls.reset(token)
            if listener is not None and calls is not None:
                method, path = scope.get("method", "GET"), scope.get("path", "/")
                listener(RequestSummary(method, path, status, time.perf_counter() - start, calls))

    async def _traced(self, scope: dict[str, Any], receive: Any, capture: _Status) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        method, path = scope.get("method", "GET"), scope.get("path", "/")
        with server_span(f"{method} {path}", headers, {"http.request.method": method, "url.path": path}) as span:
            try:
                await self.app(scope, receive, capture)
            finally:
                if span is not None:
                    span.set_attribute("http.response.status_code", capture.status)


class _Status:
    """Passes messages through, noting the response status."""

    __slots__ = ("send", "status")

    def __init__(self, send: Any) -> None:
        self.send = send
        self.status = 500

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
        await self.send(message)
