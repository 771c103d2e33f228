"""What a cloud runtime calls around each invocation: request id for the logs, cold start,
invocation and error counts, and a flush before the platform may freeze the process.

    from overcast.telemetry import runtime as telemetry_runtime

    with telemetry_runtime.invocation(handler="http", request_id=context.aws_request_id):
        ...                                     # run the handler
    telemetry_runtime.after_invocation()        # on Lambda: flush at most every few seconds
"""

from __future__ import annotations

import os
import time
from typing import Any

from . import _state
from .logs import mark_warm, request_id

__all__ = ["after_invocation", "http_error", "invocation", "is_cold"]

_cold = {"start": True}
_last_flush = {"at": time.monotonic()}


def is_cold() -> bool:
    return _cold["start"]


class invocation:
    """Around one invocation: sets the log lines' request id, counts the invocation (and
    the process's cold start, once), and counts an error if the body raises. A class, not
    a generator, as it wraps every invocation."""

    __slots__ = ("_cold", "_token", "_turn", "handler", "request")

    def __init__(self, *, handler: str, request: str | None = None) -> None:
        self.handler, self.request = handler, request

    def __enter__(self) -> None:
        self._token = request_id.set(self.request)
        self._turn = _state.invocation.set(self.handler)
        self._cold = _cold["start"]
        if _state.ENABLED:
            if self._cold:
                _state.count("cold_starts", handler=self.handler)
            _state.count("invocations", handler=self.handler)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and _state.ENABLED:
            _state.count("errors", handler=self.handler)
        request_id.reset(self._token)
        _state.invocation.reset(self._turn)
        if self._cold:
            _cold["start"] = False
            mark_warm()


def http_error() -> None:
    """Count an error for the HTTP invocation under way (a runtime that turned an unhandled
    exception into a 500 calls this, since nothing raises past it)."""
    handler = _state.invocation.get()
    if handler is not None and _state.ENABLED:
        _state.count("errors", handler=handler)


def after_invocation(*, every: float | None = None) -> bool:
    """Export what was recorded if ``every`` seconds (``OVERCAST_TELEMETRY_FLUSH``, default
    10) passed since the last export: a frozen Lambda sandbox exports nothing by itself.
    Returns whether it flushed."""
    if not _state.ENABLED or not _state.instruments.otel:
        return False
    interval = every if every is not None else float(os.environ.get("OVERCAST_TELEMETRY_FLUSH", "10"))
    now = time.monotonic()
    if now - _last_flush["at"] < interval:
        return False
    _last_flush["at"] = now
    from . import flush

    flush()
    return True
