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
from collections.abc import Iterator
from contextlib import contextmanager

from . import _state
from .logs import mark_warm, request_id

__all__ = ["after_invocation", "invocation", "is_cold"]

_cold = {"start": True}
_last_flush = {"at": time.monotonic()}


def is_cold() -> bool:
    return _cold["start"]


@contextmanager
def invocation(*, handler: str, request: str | None = None) -> Iterator[None]:
    """Around one invocation: sets the log lines' request id, counts the invocation (and
    the process's cold start, once), and counts an error if the body raises."""
    token = request_id.set(request)
    cold = _cold["start"]
    if _state.ENABLED:
        from . import count

        if cold:
            count("cold_starts", handler=handler)
        count("invocations", handler=handler)
    try:
        yield
    except BaseException:
        if _state.ENABLED:
            from . import count

            count("errors", handler=handler)
        raise
    finally:
        request_id.reset(token)
        if cold:
            _cold["start"] = False
            mark_warm()


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
