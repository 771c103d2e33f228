"""What a timed call records: its duration (``overcast.upstream.duration``), its outcome,
the dev server's per-request summary and, when tracing, a client span with the
semantic-convention attributes of the service behind it. The timed wrappers
(:mod:`overcast.telemetry.wrappers`) call these.
"""

from __future__ import annotations

from array import array
from typing import Any

from ..errors import Conflict, InvalidArgument, NotFound, Throttled, Unavailable
from . import _state

#: Durations kept for one series before they are handed to the histogram at once, so a
#: process whose metrics nobody collects does not grow without bound. Below it, the
#: calling path only appends a double: the OpenTelemetry SDK's ``Histogram.record``
#: (about 10 µs a measurement in SDK 1.45) runs when a reader collects, on the reader's
#: thread for a periodic one; a series busier than the bound per collection interval
#: (about 1,000 calls a second with a 60 s export) pays it on the calling path, in batches.
MAX_PENDING = 65536


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


def record_call(key: tuple[str, str], operation: str, seconds: float, exc: BaseException | None) -> None:
    """Record one call of ``operation`` on the resource ``key`` (upstream, resource name)."""
    upstream, name = key
    outcome = "ok" if exc is None else outcome_of(exc)
    if outcome == "throttled":
        _state.count("throttles", upstream=upstream, resource=name)
    if _state.instruments.otel:
        series = (upstream, operation, name, outcome)
        durations = _state.pending.get(series)
        if durations is None:
            durations = _state.pending.setdefault(series, array("d"))
        durations.append(seconds)
        if len(durations) >= MAX_PENDING:
            drain(series, durations)
    calls = _state.request_calls.get()
    if calls is not None:
        calls.append((upstream, operation, _state.redact_text(name) if _state.secrets else name, outcome, seconds))
    listener = _state.call_listener
    if listener is not None:
        listener(
            upstream,
            operation,
            _state.redact_text(name) if _state.secrets else name,
            outcome,
            seconds,
            calls is not None,
        )


def record_size(key: tuple[str, str], operation: str, direction: str, size: int) -> None:
    """``size`` bytes went to (``transmit``) or came from (``receive``) the service behind
    the resource ``key`` in one call of ``operation``: kept for ``overcast.upstream.payload.size``."""
    if not _state.instruments.otel:
        return
    series = (key[0], operation, key[1], direction)
    sizes = _state.sizes.get(series)
    if sizes is None:
        sizes = _state.sizes.setdefault(series, array("d"))
    sizes.append(size)
    if len(sizes) >= MAX_PENDING:
        drain_sizes(series, sizes)


def drain_sizes(key: tuple[str, str, str, str], sizes: array[float]) -> None:
    """Hand the payload sizes of series ``key`` (upstream, operation, resource, direction) to their histogram."""
    upstream, operation, resource, direction = key
    name = _state.redact_text(resource) if _state.secrets else resource
    attributes = {
        "upstream": upstream,
        "operation": operation,
        "resource": name,
        "network.io.direction": direction,
    }
    _state.hand_over(_state.instruments.payload_size, sizes, attributes)


def drain(key: tuple[str, str, str, str], durations: array[float]) -> None:
    """Hand ``durations`` of series ``key`` (upstream, operation, resource, outcome) to the histogram.

    The durations taken are cut from the front under a lock, so appends made meanwhile
    (other threads go on appending) stay for the next drain and none is handed over twice.
    """
    with _state.draining:
        taken = len(durations)
        values = durations[:taken]
        del durations[:taken]
    histogram = _state.instruments.upstream_duration
    if histogram is None:
        return
    upstream, operation, resource, outcome = key
    name = _state.redact_text(resource) if _state.secrets else resource
    attributes = {"upstream": upstream, "operation": operation, "resource": name, "outcome": outcome}
    for seconds in values:
        histogram.record(seconds, attributes)


def semantic_attributes(resource: Any, operation: str) -> dict[str, str]:
    """OpenTelemetry's semantic-convention attributes for a call to ``resource``: the
    system its family names (``db.system``, ``messaging.system``, ``rpc.system``...), the
    operation, the table, bucket or queue, and the server's address (an ``endpoint``
    option, or the URL's host where the family says the host is the server: ``{host}``)."""
    from ..resources.registry import semantic_conventions

    location = resource.location
    declared = semantic_conventions(location.scheme)
    host = location.host or ""
    hostname, colon, port = host.rpartition(":")
    if not colon or not port.isdigit():
        hostname, port = host, ""
    server = {"host": hostname, "port": port}
    attributes = {key: value.format_map(server) for key, value in declared.items()}
    attributes = {key: value for key, value in attributes.items() if value}
    # the table, bucket or queue: the URL's host, unless the host is the server (Redis, PostgreSQL)
    named = resource.name if "{host}" in declared.get("server.address", "") else (location.host or resource.name)
    for system, operation_key, target_key in (
        ("db.system", "db.operation.name", "db.collection.name"),
        ("messaging.system", "messaging.operation.name", "messaging.destination.name"),
        ("rpc.system", "rpc.method", ""),
    ):
        if system in attributes:
            attributes[operation_key] = operation
            if target_key and named:
                attributes[target_key] = named
            break
    endpoint = location.option("endpoint")
    if endpoint and "server.address" not in attributes:
        from urllib.parse import urlsplit

        parts = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}")
        if parts.hostname:
            attributes["server.address"] = parts.hostname
            if parts.port:
                attributes["server.port"] = str(parts.port)
    return attributes


def start_span(resource: Any, operation: str) -> Any:
    tracer = _state.instruments.tracer
    if tracer is None:
        return None
    from opentelemetry.trace import SpanKind

    upstream, name = _key_of(resource)
    attributes: dict[str, Any] = {
        "overcast.upstream": upstream,
        "overcast.operation": operation,
        "overcast.resource": name,
    }
    attributes.update(semantic_attributes(resource, operation))
    return tracer.start_span(f"{upstream} {operation}", kind=SpanKind.CLIENT, attributes=attributes)


def end_span(span: Any, error: BaseException | None) -> None:
    if span is None:
        return
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        outcome = outcome_of(error)
        span.set_attribute("overcast.outcome", outcome)
        span.set_attribute("error.type", type(error).__qualname__)
        if outcome not in ("conflict", "not_found"):
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()
