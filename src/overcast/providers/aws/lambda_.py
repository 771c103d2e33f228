"""The app on AWS Lambda: ``handler = lambda_handler(app)``.

HTTP events (API Gateway REST and HTTP APIs, ALB, function URLs) run the app's ASGI app
(see :mod:`.lambda_http`); every other event (SQS, SNS, S3, EventBridge, schedules,
DynamoDB streams, Kinesis) becomes CloudEvents delivered to the app's subscriptions and
schedules (see :mod:`.lambda_events`), which is imported only when such an event comes.

One event loop lives as long as the execution environment, so clients opened by one
invocation serve the next; the ASGI lifespan starts once, on the first HTTP request.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from ...runtime.http import BAD_REQUEST_BODY, BAD_REQUEST_HEADERS, run_http
from ...runtime.lifespan import Lifespan, LifespanFailure
from ...telemetry import runtime as telemetry_runtime
from ...telemetry.logs import mark_warm, request_id
from ...telemetry.runtime import counts, invocation
from .lambda_http import HttpAdapter, adapter_for

# asyncio is imported on the first invocation, not here: the handler module's import is
# part of every cold start, and an HTTP app's framework usually brings asyncio anyway.
if TYPE_CHECKING:
    import asyncio

    from ...app import App
    from .lambda_events import EventRouter

__all__ = ["LambdaHandler", "lambda_handler"]

log = logging.getLogger("overcast.aws.lambda")

_cold = {"start": True}

Route = str | Callable[..., Any]


def lambda_handler(
    app: App,
    *,
    routes: Mapping[str, Route] | None = None,
    base_path: str = "",
    lifespan: Literal["auto", "on", "off"] = "auto",
) -> LambdaHandler:
    """The Lambda handler of ``app``: ``handler = lambda_handler(app)``.

    Args:
        routes: events from sources that are not the app's queues and topics (an S3
            bucket, a DynamoDB or Kinesis stream, an EventBridge rule): a glob over the
            source's ARN or name (``"arn:aws:s3:::uploads"``, ``"uploads"``,
            ``"orders-*"``) mapped to a subscription or schedule name, or to a function
            taking a :class:`~overcast.CloudEvent`. Routes are tried before the app's own.
            Prefer declaring them on the app, ``@app.on(bucket)`` or ``@app.on("pattern")``,
            which this handler reads too and ``overcast plan`` wires up.
        base_path: a prefix to strip from request paths (an API mapped under ``/v1``).
        lifespan: run the ASGI lifespan's startup once per execution environment
            (``auto``: if the app supports it; ``on``: fail when it does not).
    """
    return LambdaHandler(app, routes=routes, base_path=base_path, lifespan=lifespan)


class LambdaHandler:
    """Callable as ``handler(event, context)``; see :func:`lambda_handler`."""

    def __init__(
        self,
        app: App,
        *,
        routes: Mapping[str, Route] | None = None,
        base_path: str = "",
        lifespan: Literal["auto", "on", "off"] = "auto",
    ) -> None:
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', got {lifespan!r}")
        self.app = app
        self.routes: dict[str, Route] = dict(routes or {})
        self.base_path = base_path.rstrip("/")
        self.lifespan = lifespan
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lifespan: Lifespan | None = None
        self._router: EventRouter | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop every invocation runs on (made on first use, kept for the process)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            import asyncio
            import weakref

            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            # A handler dropped before the process ends (tests make many) closes its loop.
            weakref.finalize(self, _close_loop, loop)
        return loop

    def __call__(self, event: Any, context: Any) -> Any:
        rid = getattr(context, "aws_request_id", None)
        token = request_id.set(rid)
        try:
            adapter = adapter_for(event)
            if adapter is not None:
                if telemetry_runtime.active():
                    return self._observed_http(adapter, event, context, rid)
                return self._http(adapter, event, context, rid)
            return self._event(event, context, rid)
        finally:
            request_id.reset(token)
            if _cold["start"]:
                _cold["start"] = False
                mark_warm()
            # a frozen sandbox exports nothing: flush now and then
            telemetry_runtime.flush_if_due()

    # -- HTTP ----------------------------------------------------------------------------

    def _observed_http(
        self, adapter: HttpAdapter, event: dict[str, Any], context: Any, rid: str | None
    ) -> dict[str, Any]:
        """:meth:`_http`, counted (the request id is already set: no second context)."""
        series = counts("http")
        started = time.perf_counter()
        try:
            if not telemetry_runtime.traces_requests():
                # nothing for the middleware to do: the app itself, its errors counted here
                return self._http(adapter, event, context, rid, self.app.plain_asgi, series[2])
            turn = telemetry_runtime.enter_invocation("http")
            try:
                return self._http(adapter, event, context, rid)
            finally:
                telemetry_runtime.leave_invocation(turn)
        except BaseException:
            series[2].append(1)
            raise
        finally:
            telemetry_runtime.handled("http", time.perf_counter() - started)

    def _http(
        self,
        adapter: HttpAdapter,
        event: dict[str, Any],
        context: Any,
        rid: str | None,
        asgi: Any = None,
        errors: deque[int] | None = None,
    ) -> dict[str, Any]:
        try:
            scope, body = adapter.scope(event, self.base_path)
        except (KeyError, TypeError, ValueError) as exc:  # binascii.Error is a ValueError
            log.warning("malformed %s event (request %s): %r", adapter.name, rid, exc)
            return adapter.response(event, 400, list(BAD_REQUEST_HEADERS), BAD_REQUEST_BODY)
        loop = self._loop or self.loop
        lifespan = self._lifespan
        if lifespan is None and self.lifespan != "off":
            lifespan = Lifespan(self.app.asgi, mode="on" if self.lifespan == "on" else "auto")
            loop.run_until_complete(lifespan.startup())
            self._lifespan = lifespan
            import atexit

            atexit.register(self.close)
        scope["aws.context"] = context  # with "aws.event", where Mangum puts them too
        if lifespan is not None and lifespan.state:
            scope["state"] = lifespan.state.copy()
        status, headers, payload = _run(loop, run_http(asgi or self.app.asgi, scope, body, rid, log=log, errors=errors))
        return adapter.response(event, status, headers, payload)

    def close(self) -> None:
        """Run the lifespan's shutdown and close the loop (at exit; Lambda itself never asks)."""
        loop, lifespan = self._loop, self._lifespan
        self._lifespan = None
        if loop is None or loop.is_closed():
            return
        if lifespan is not None:
            with contextlib.suppress(LifespanFailure):  # logged by the lifespan
                loop.run_until_complete(lifespan.shutdown())
        loop.close()
        self._loop = None

    # -- everything else -------------------------------------------------------------------

    @property
    def router(self) -> EventRouter:
        """How events reach the app's handlers (built on the first non-HTTP event)."""
        if self._router is None:
            from .lambda_events import EventRouter

            self._router = EventRouter(self.app, self.routes)
        return self._router

    def _event(self, event: Any, context: Any, rid: str | None) -> Any:
        router = self.router
        with invocation(handler=router.kind_of(event), request=rid):
            return self.loop.run_until_complete(router.handle(event, context))


def _run(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    """``loop.run_until_complete(coro)`` in one pass of the loop when ``coro`` finishes at its
    first step and leaves nothing else to run (a warm request that awaits no I/O): the loop is
    stopped by a callback queued behind the task, not by the task's done callback one pass
    (and one poll of the selector) later. Otherwise, or on a loop without ``_ready``
    (uvloop), it goes on as ``run_until_complete``, which runs what was left queued."""
    ready = getattr(loop, "_ready", None)
    if ready is None or loop.is_running():
        return loop.run_until_complete(coro)
    task = loop.create_task(coro)
    stop = loop.call_soon(loop.stop)
    try:
        loop.run_forever()
    except BaseException:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: raised here, not logged again when the task goes
        raise
    finally:
        stop.cancel()  # still queued if the loop ended otherwise
    if task.done() and not ready:
        return task.result()
    return loop.run_until_complete(task)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    if not loop.is_closed() and not loop.is_running():
        loop.close()
