"""Telemetry as a wrapper: what times each provider operation.

Where a resource is opened (``overcast.open_kv`` and its siblings, ``app.kv(...)`` and
the other App handles), the provider is wrapped by :func:`timed` in a ``Timed*`` class
of its kind. The wrapper keeps the wrapper contract of
:mod:`overcast.resources.forwarding`: each hook forwards to the provider's same hook with
the same, already validated, arguments; while telemetry is on it records
``overcast.upstream.duration`` (and the bytes a call sends or reads back in
``overcast.upstream.payload.size``) and, when tracing, a client span around the call. While
telemetry is off a call costs one flag check. Nothing is patched: a provider class is
the same whether telemetry is on or not, and a provider constructed directly (not opened)
is not timed.

The wrapper is transparent, as instrumentation proxies are (wrapt's ``ObjectProxy``):
attributes it does not have itself (a provider's own ``table``, ``url``,
``subscription_id``) are read from the provider, its repr is the provider's, and
``isinstance(store, DynamoDBKeyValueStore)`` holds, so code written against a provider
keeps working when it reaches it through its timed wrapper.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..resources.base import Resource
from ..resources.forwarding import (
    ForwardingBlobStore,
    ForwardingCache,
    ForwardingKeyValueStore,
    ForwardingQueue,
    ForwardingSecretStore,
    ForwardingTopic,
    _Forwarding,
    bind_direct,
)
from ..resources.queue import Queue
from . import _instrument, _state

__all__ = [
    "TimedBlobStore",
    "TimedCache",
    "TimedKeyValueStore",
    "TimedQueue",
    "TimedSecretStore",
    "TimedTopic",
    "timed",
]

# Hooks of the forwarding classes that are not calls to the service behind the resource.
_NOT_CALLS = frozenset({"_target", "_used", "_hit", "_keep", "_subscription"})


def _operation(hook: str) -> str:
    return hook.lstrip("_").removesuffix("_blocking")


def _payload(base: type, hook: str) -> tuple[int | None, bool]:
    """Where a hook's payload is: the position of its ``data`` argument (the bytes it sends,
    None if it sends none), and whether it returns the bytes it read (``bytes`` or ``bytes | None``)."""
    method = getattr(base, hook, None)
    if method is None:
        return None, False
    parameters = [p for p in inspect.signature(method).parameters.values() if p.name != "self"]
    sent = next((i for i, p in enumerate(parameters) if p.name == "data"), None)
    returns = str(inspect.signature(method).return_annotation).replace(" ", "")
    return sent, returns in ("bytes", "bytes|None")


def _sizes(
    key: tuple[str, str], operation: str, sent: int | None, received: bool, args: Any, kwargs: Any, result: Any
) -> None:
    """Record what a call sent and read back, in bytes (``overcast.upstream.payload.size``)."""
    if sent is not None:
        data = args[sent] if len(args) > sent else kwargs.get("data")
        if data is not None:
            _instrument.record_size(key, operation, "transmit", len(data))
    if received and type(result) is bytes:
        _instrument.record_size(key, operation, "receive", len(result))


def _sync_hook(hook: str, sent: int | None = None, received: bool = False) -> Callable[..., Any]:
    operation = _operation(hook)
    sized = sent is not None or received

    def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = getattr(self._inner, hook)
        if not _state.ENABLED or _state.in_upstream.get() is not None:
            return call(*args, **kwargs) if kwargs else call(*args)  # hooks are called positionally
        key = self._telemetry_key
        token = _state.in_upstream.set((*key, operation))
        span = None if _state.instruments.tracer is None else _instrument.start_span(self, operation)
        start = time.perf_counter()
        error: BaseException | None = None
        try:
            result = call(*args, **kwargs)
            if sized:
                _sizes(key, operation, sent, received, args, kwargs, result)
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            _instrument.record_call(key, operation, time.perf_counter() - start, error)
            if span is not None:
                _instrument.end_span(span, error)
            _state.in_upstream.reset(token)

    forward.__name__ = forward.__qualname__ = hook
    return forward


def _async_hook(hook: str, sent: int | None = None, received: bool = False) -> Callable[..., Any]:
    operation = _operation(hook)
    sized = sent is not None or received

    def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Not a coroutine function: while telemetry is off (or inside another timed call) the
        # provider's own coroutine is returned for the caller to await, one frame fewer.
        call = getattr(self._inner, hook)
        if not _state.ENABLED or _state.in_upstream.get() is not None:
            return call(*args, **kwargs) if kwargs else call(*args)
        return timed_call(self, call, args, kwargs)

    async def timed_call(self: Any, call: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        key = self._telemetry_key
        token = _state.in_upstream.set((*key, operation))
        span = None if _state.instruments.tracer is None else _instrument.start_span(self, operation)
        start = time.perf_counter()
        error: BaseException | None = None
        try:
            result = await call(*args, **kwargs)
            if sized:
                _sizes(key, operation, sent, received, args, kwargs, result)
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            _instrument.record_call(key, operation, time.perf_counter() - start, error)
            if span is not None:
                _instrument.end_span(span, error)
            _state.in_upstream.reset(token)

    forward.__name__ = forward.__qualname__ = hook
    return forward


def _is_call(base: type, name: str, value: Any) -> bool:
    if not name.startswith("_") or name.startswith("__") or name in _NOT_CALLS or not callable(value):
        return False
    if inspect.isasyncgenfunction(value):
        return False  # a stream's chunks are read after the call returns: not one call to time
    return name.endswith("_blocking") or callable(getattr(base, f"{name}_blocking", None))


C = TypeVar("C", bound=type)


def _timing(cls: C) -> C:
    """Give the timed class ``cls`` a timed hook for each call hook of its forwarding base,
    and timed ``create`` and ``ping`` (public on every resource, timed under those names)."""
    forwarding = next(base for base in cls.__mro__ if base.__name__.startswith("Forwarding"))
    for name, value in vars(forwarding).items():
        if _is_call(forwarding, name, value) and name not in vars(cls):
            make = _async_hook if inspect.iscoroutinefunction(value) else _sync_hook
            setattr(cls, name, make(name, *_payload(forwarding, name)))
    cls.create = _async_hook("create")  # type: ignore[attr-defined]
    cls.ping = _async_hook("ping")  # type: ignore[attr-defined]
    return cls


class _Timed:
    """Mixin of every timed wrapper: its provider's telemetry key, its repr and attributes."""

    _inner: Any

    def __init__(self, inner: Resource) -> None:
        super().__init__(inner)  # type: ignore[call-arg]
        self._telemetry_key: tuple[str, str] = (_instrument.upstream_of(inner), inner.name)
        self.__dict__["offload"] = inner.offload  # what the provider says about its hooks
        bind_direct(self, inner, "always")  # validation is the provider's: no frame of ours

    def _target(self) -> Any:
        return self._inner

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self.__dict__["_inner"]) if "_inner" in self.__dict__ else type(self)

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("_inner")
        if inner is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(inner, name)

    def __repr__(self) -> str:
        return repr(self._inner)


@_timing
class TimedKeyValueStore(_Timed, ForwardingKeyValueStore):
    """A key-value store whose every call is timed while telemetry is on."""


@_timing
class TimedBlobStore(_Timed, ForwardingBlobStore):
    """A blob store whose every call is timed while telemetry is on."""


@_timing
class TimedCache(_Timed, ForwardingCache):
    """A cache whose every call is timed while telemetry is on."""


@_timing
class TimedSecretStore(_Timed, ForwardingSecretStore):
    """A secret store whose every fetch is timed while telemetry is on (cache hits are not calls)."""


@_timing
class TimedQueue(_Timed, ForwardingQueue):
    """A queue whose every call is timed while telemetry is on, and its dead letters too."""

    def dead_letters(self) -> Queue:
        queue: Queue = self._inner.dead_letters()
        return timed(queue)


@_timing
class TimedTopic(_Timed, ForwardingTopic):
    """A topic whose publishes are timed while telemetry is on, and its subscriptions' queues too."""

    def _subscription(self, name: str, max_attempts: int | None) -> Queue:
        queue: Queue = self._inner._subscription(name, max_attempts)
        return timed(queue)


_BY_KIND: dict[str, type[Any]] = {
    "kv": TimedKeyValueStore,
    "bucket": TimedBlobStore,
    "queue": TimedQueue,
    "topic": TimedTopic,
    "cache": TimedCache,
    "secret": TimedSecretStore,
}

R = TypeVar("R", bound=Resource)


def timed(resource: R) -> R:
    """``resource`` wrapped so each operation is timed while telemetry is on.

    A wrapper (an App handle, a timed or resilience wrapper) is returned as it is: the
    providers it reaches are the ones timed. So is a provider class that sets
    ``instrumented = False`` (one that only delegates to other providers)."""
    if isinstance(resource, _Forwarding) or getattr(type(resource), "instrumented", True) is False:
        return resource
    wrapper = _BY_KIND.get(resource.kind)
    if wrapper is None:
        return resource
    made: R = wrapper(resource)
    return made
