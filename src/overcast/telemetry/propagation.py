"""W3C trace context in message attributes: injected when sending, extracted when delivering.

The attributes are ``traceparent`` and ``tracestate`` (the W3C names, also the CloudEvents
distributed-tracing extension's), so any consumer that speaks W3C trace context joins the trace.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from . import _state

__all__ = ["consumer_span", "extract", "inject", "server_span"]


def inject(attributes: dict[str, str], room: int) -> None:
    """Add the current trace context to ``attributes`` if there is one and ``room`` allows."""
    if "traceparent" in attributes or room < 2:
        return
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if "traceparent" in carrier:
        attributes.update(carrier)


def extract(carrier: Mapping[str, str]) -> Any:
    from opentelemetry import propagate

    return propagate.extract({k.lower(): v for k, v in carrier.items()})


@contextmanager
def _continued_span(
    kind_name: str, name: str, carrier: Mapping[str, str], span_attributes: dict[str, Any]
) -> Iterator[Any]:
    tracer = _state.instruments.tracer
    if tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    kind = SpanKind[kind_name]
    with tracer.start_as_current_span(name, context=extract(carrier), kind=kind, attributes=span_attributes) as span:
        yield span


def consumer_span(name: str, attributes: Mapping[str, str], span_attributes: dict[str, Any]) -> Any:
    """A CONSUMER span continuing the trace carried by a message's attributes."""
    return _continued_span("CONSUMER", name, attributes, span_attributes)


def server_span(name: str, headers: Mapping[str, str], span_attributes: dict[str, Any]) -> Any:
    """A SERVER span continuing the trace of an incoming request's ``traceparent`` header."""
    return _continued_span("SERVER", name, headers, span_attributes)
