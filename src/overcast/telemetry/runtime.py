"""What a cloud runtime calls around each invocation: request id for the logs, cold start,
invocation and error counts, and a flush before the platform may freeze the process.

    from overcast.telemetry import runtime as telemetry_runtime

    with telemetry_runtime.invocation(handler="http", request_id=context.aws_request_id):
        ...                                     # run the handler
    telemetry_runtime.after_invocation()        # on Lambda: flush at most every few seconds
"""

from __future__ import annotations

import contextvars
import os
import time
from collections import deque
from typing import Any

from . import _state
from ._state import handled
from .logs import mark_warm, request_id

__all__ = [
    "active",
    "after_invocation",
    "cold_start",
    "counted",
    "counts",
    "enter_invocation",
    "flush_if_due",
    "handled",
    "http_error",
    "invocation",
    "is_cold",
    "leave_invocation",
    "mark_warm",
    "traces_requests",
]

_cold = {"start": True}
_last_flush = {"at": time.monotonic()}


def is_cold() -> bool:
    return _cold["start"]


def active() -> bool:
    """Whether telemetry is on: a runtime takes its observed path only then."""
    return _state.ENABLED


def traces_requests() -> bool:
    """Whether an HTTP request needs the telemetry middleware (a tracer or a request
    listener is set); otherwise counting the invocation is all there is to do."""
    return _state.instruments.tracer is not None or _state.request_listener is not None


def enter_invocation(handler: str) -> contextvars.Token[str | None]:
    """Mark ``handler``'s invocation as under way (its errors are counted under it);
    :func:`leave_invocation` with the token ends it. For a runtime that keeps the request
    id and the cold start itself; the others use :class:`invocation`."""
    return _state.invocation.set(handler)


def leave_invocation(token: contextvars.Token[str | None]) -> None:
    _state.invocation.reset(token)


def flush_if_due() -> None:
    """:func:`after_invocation` when its interval has passed: one comparison otherwise."""
    if _state.ENABLED and time.monotonic() >= _state.flush_due:
        after_invocation()


class invocation:
    """Around one invocation: sets the log lines' request id, counts the invocation (and
    the process's cold start, once), and counts an error if the body raises. A class, not
    a generator, as it wraps every invocation; the counter series of each handler are
    resolved once, so counting is one append; its run time goes to ``overcast.handler.duration``."""

    __slots__ = ("_cold", "_start", "_token", "_turn", "handler", "request")

    def __init__(self, *, handler: str, request: str | None = None) -> None:
        self.handler, self.request = handler, request

    def __enter__(self) -> None:
        self._token = request_id.set(self.request)
        self._turn = _state.invocation.set(self.handler)
        self._cold = cold_start(self.handler)
        self._start = 0.0
        if _state.ENABLED:
            _series(self.handler)[1].append(1)
            self._start = time.perf_counter()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self._start:
            handled(self.handler, time.perf_counter() - self._start)
        if exc is not None and _state.ENABLED:
            _series(self.handler)[2].append(1)
        request_id.reset(self._token)
        _state.invocation.reset(self._turn)
        if self._cold:
            mark_warm()


_handlers: dict[str, tuple[deque[int], deque[int], deque[int]]] = {}


def _series(handler: str) -> tuple[deque[int], deque[int], deque[int]]:
    """The cold-start, invocation and error series of ``handler``."""
    found = _handlers.get(handler)
    if found is None:
        found = _handlers[handler] = (
            _state.series("cold_starts", handler=handler),
            _state.series("invocations", handler=handler),
            _state.series("errors", handler=handler),
        )
    return found


def cold_start(handler: str) -> bool:
    """The process's first invocation begins: count its cold start under ``handler`` (when
    telemetry is on) and return True, once per process; False ever after. For a runtime
    that serves requests concurrently (Cloud Run): it calls :func:`mark_warm` when that
    first invocation ends."""
    if not _cold["start"]:
        return False
    _cold["start"] = False
    if _state.ENABLED:
        _series(handler)[0].append(1)
    return True


def counted(handler: str, failed: bool, seconds: float | None = None) -> None:
    """Count one invocation of ``handler`` (and an error if ``failed``) that no other layer
    counts: an event a runtime routes straight to a function; ``seconds``, its run time."""
    if _state.ENABLED:
        series = _series(handler)
        series[1].append(1)
        if failed:
            series[2].append(1)
        if seconds is not None:
            handled(handler, seconds)


def counts(handler: str) -> tuple[deque[int], deque[int], deque[int]]:
    """Count one invocation of ``handler`` (and the process's cold start, the first time)
    and return its (cold start, invocation, error) series: for a runtime that keeps the
    request id and the log lines' cold start itself (Lambda's), the cheapest way in. The
    runtime calls :func:`enter_invocation` and appends to the error series itself."""
    cold_start(handler)
    series = _series(handler)
    series[1].append(1)
    return series


def http_error() -> None:
    """Count an error for the HTTP invocation under way (a runtime that turned an unhandled
    exception into a 500 calls this, since nothing raises past it)."""
    handler = _state.invocation.get()
    if handler is not None and _state.ENABLED:
        _state.count("errors", handler=handler)


def after_invocation(*, every: float | None = None) -> bool:
    """Export what was recorded if ``every`` seconds (``OVERCAST_TELEMETRY_FLUSH``, default
    10, read once per configuration) passed since the last export: a frozen Lambda sandbox
    exports nothing by itself. Returns whether it flushed."""
    if not _state.ENABLED or not _state.instruments.otel:
        return False
    now = time.monotonic()
    if every is None:
        every = _state.flush_every
        if every is None:
            every = _state.flush_every = float(os.environ.get("OVERCAST_TELEMETRY_FLUSH", "10"))
    if now - _last_flush["at"] < every:
        _state.flush_due = _last_flush["at"] + every  # a runtime may skip calling until then
        return False
    _last_flush["at"] = now
    _state.flush_due = now + every
    from . import flush

    flush()
    return True
