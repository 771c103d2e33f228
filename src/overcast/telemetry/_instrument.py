"""Timing every provider operation, installed only when telemetry is turned on.

Providers implement their operations as hooks (``_get`` / ``_get_blocking``, see
:class:`overcast.resources.base.Resource`). ``install()`` wraps the hooks each provider
class defines itself — every one already imported, and every one defined later — so
that each call records ``overcast.upstream.duration`` and, when tracing, a client span.
Wrappers that forward to another resource (App handles) are not wrapped: the resource
they reach counts the call. Nothing is wrapped while telemetry is off.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import Conflict, InvalidArgument, NotFound, Throttled, Unavailable
from . import _state

_SKIP = frozenset({"_call", "_check_key", "_check_page", "_check_limit", "_check_message", "_check_receive"})


def upstream_of(resource: Any) -> str:
    explicit = getattr(type(resource), "upstream", None)
    if explicit:
        return str(explicit)
    from ..resources.registry import upstream_name  # each family names its upstreams

    return upstream_name(resource.location.scheme)


def _key_of(resource: Any) -> tuple[str, str]:
    """(upstream, resource name), remembered on the resource after the first call."""
    try:
        key: tuple[str, str] = resource.__dict__["_telemetry_key"]
    except KeyError:
        key = resource.__dict__["_telemetry_key"] = (upstream_of(resource), resource.name)
    return key


def outcome_of(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    for kind, name in (
        (Conflict, "conflict"),
        (NotFound, "not_found"),
        (Throttled, "throttled"),
        (Unavailable, "unavailable"),
        (InvalidArgument, "invalid"),
    ):
        if isinstance(exc, kind):
            return name
    return "error"


def record(resource: Any, operation: str, seconds: float, exc: BaseException | None) -> None:
    upstream, name = _key_of(resource)
    outcome = "ok" if exc is None else outcome_of(exc)
    if outcome == "throttled":
        _state.count("throttles", upstream=upstream, resource=name)
    if _state.instruments.otel:
        key = (upstream, operation, name, outcome)
        durations = _state.pending.get(key)
        if durations is None:
            durations = _state.pending.setdefault(key, deque())
        durations.append(seconds)
    calls = _state.request_calls.get()
    if calls is not None:
        calls.append((upstream, operation, _state.redact_text(name) if _state.secrets else name, outcome, seconds))


def _operation(hook: str) -> str:
    return hook[1:].removesuffix("_blocking")


def _wrap(func: Callable[..., Any], operation: str) -> Callable[..., Any]:
    if getattr(func, "__overcast_instrumented__", False):
        return func
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not _state.ENABLED or _state.in_upstream.get():
                return await func(self, *args, **kwargs)
            token = _state.in_upstream.set((*_key_of(self), operation))
            span = _start_span(self, operation)
            start = time.perf_counter()
            error: BaseException | None = None
            try:
                return await func(self, *args, **kwargs)
            except BaseException as exc:
                error = exc
                raise
            finally:
                record(self, operation, time.perf_counter() - start, error)
                _end_span(span, error)
                _state.in_upstream.reset(token)

        async_wrapper.__overcast_instrumented__ = True  # type: ignore[attr-defined]
        return async_wrapper

    if inspect.isasyncgenfunction(func):
        return func

    @functools.wraps(func)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _state.ENABLED or _state.in_upstream.get():
            return func(self, *args, **kwargs)
        token = _state.in_upstream.set((*_key_of(self), operation))
        span = _start_span(self, operation)
        start = time.perf_counter()
        error: BaseException | None = None
        try:
            return func(self, *args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            record(self, operation, time.perf_counter() - start, error)
            _end_span(span, error)
            _state.in_upstream.reset(token)

    wrapper.__overcast_instrumented__ = True  # type: ignore[attr-defined]
    return wrapper


def _start_span(resource: Any, operation: str) -> Any:
    tracer = _state.instruments.tracer
    if tracer is None:
        return None
    from opentelemetry.trace import SpanKind

    upstream = upstream_of(resource)
    span = tracer.start_span(
        f"{upstream} {operation}",
        kind=SpanKind.CLIENT,
        attributes={"overcast.upstream": upstream, "overcast.operation": operation, "overcast.resource": resource.name},
    )
    return span


def _end_span(span: Any, error: BaseException | None) -> None:
    if span is None:
        return
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("overcast.outcome", outcome_of(error))
        if outcome_of(error) not in ("conflict", "not_found"):
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


def instrument_class(cls: type) -> None:
    """Wrap the hooks ``cls`` defines itself (not inherited ones: those are wrapped where defined)."""
    from ..resources.forwarding import _Forwarding

    if issubclass(cls, _Forwarding) or getattr(cls, "instrumented", True) is False:
        return
    for name, value in list(vars(cls).items()):
        if not name.startswith("_") or name.startswith("__") or name in _SKIP or not callable(value):
            continue
        if not (name.endswith("_blocking") or callable(getattr(cls, f"{name}_blocking", None))):
            continue
        setattr(cls, name, _wrap(value, _operation(name)))


def _subclasses(cls: type) -> list[type]:
    found: list[type] = []
    sub: type
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def install() -> None:
    """Wrap every provider class's hooks, now and for provider classes defined later."""
    from ..resources.base import Resource

    for cls in _subclasses(Resource):
        if cls.__module__.startswith("overcast.resources."):
            continue  # the interfaces' default hooks only delegate; the provider's hooks count
        instrument_class(cls)
    Resource._instrument_subclass = _instrument_new


def _instrument_new(cls: type) -> None:
    if not cls.__module__.startswith("overcast.resources."):
        instrument_class(cls)
