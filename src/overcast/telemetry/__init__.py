"""Telemetry on OpenTelemetry: upstream latency, counters, traces and structured logs.

Off by default, and then free: no OpenTelemetry module is imported, and a call through
an opened resource's timed wrapper costs one flag check. It is on when:

- the app set up OpenTelemetry itself, the standard way (a global ``MeterProvider`` or
  ``TracerProvider`` from the SDK, ``opentelemetry-instrument``, a vendor's distro):
  Overcast's instruments are created from the global API, under the instrumentation
  scope ``overcast`` with Overcast's version, when the first resource opens or a runtime
  starts; nothing else to call (``OVERCAST_TELEMETRY=0`` keeps it off);
- or :func:`configure` was called (the cloud runtimes and ``overcast dev`` call
  :func:`configure_from_env`, which does so when the environment asks for it).

Once on:

- every operation of a resource opened through ``overcast.open_*`` or an App handle
  (:mod:`overcast.telemetry.wrappers`) records ``overcast.upstream.duration``
  (histogram, seconds) with attributes ``upstream`` (``dynamodb``, ``firestore``,
  ``sqlite``, ...), ``operation``, ``resource`` and ``outcome`` (``ok``, ``conflict``,
  ``not_found``, ``throttled``, ``unavailable``, ``invalid``, ``error``), and a client
  span when tracing, with the semantic-convention attributes of its service
  (``db.system``, ``messaging.system``, ``server.address``, ``error.type``...);
- ``overcast.upstream.payload.size`` (histogram, bytes): the item, object or message
  written (``network.io.direction=transmit``) or the bytes read back (``receive``) by
  a call, with the same ``upstream``, ``operation`` and ``resource``;
- ``overcast.handler.duration`` (histogram, seconds) per ``handler``: the run time of
  each invocation; ``overcast.memory.peak`` (gauge, bytes): the process's peak memory;
- counters ``overcast.retries``, ``overcast.throttles``, ``overcast.invocations``,
  ``overcast.errors``, ``overcast.cold_starts`` (and the resilience layer's
  ``overcast.circuit.changes`` and ``overcast.deferred.*``), fed by :func:`count`;
- W3C trace context goes from the current span into every message sent or published
  (``traceparent`` / ``tracestate`` attributes) and back out into the subscriber's span;
- values read through ``app.secret`` are replaced by ``[REDACTED]`` in logs (through
  :class:`overcast.telemetry.logs.JsonFormatter` or :func:`redacting_filter`) and in
  metric attributes.

The standard ``OTEL_*`` variables are honoured: ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``
(``otlp``, ``console``, ``none``), ``OTEL_EXPORTER_OTLP_ENDPOINT`` and the rest of
the OTLP exporter's settings, ``OTEL_METRIC_EXPORT_INTERVAL``, ``OTEL_SDK_DISABLED``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..resources import queue as queue_resources
from ..resources import secrets as secret_resources
from . import _state
from ._state import count, redact_text, replication_lag, retried

if TYPE_CHECKING:
    from collections.abc import Callable

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    from .http import RequestSummary

__all__ = [
    "COUNTERS",
    "adopt_global",
    "configure",
    "configure_from_env",
    "count",
    "enabled",
    "flush",
    "forget_secrets",
    "redact",
    "redact_text",
    "replication_lag",
    "retried",
    "shutdown",
    "summarize_requests",
    "timed",
    "watch_age",
    "watch_app",
    "watch_calls",
    "watch_replication",
    "watch_backlog",
]

#: The instrumentation scope of every Overcast metric and span.
SCOPE = "overcast"

#: The counters :func:`count` feeds, ``overcast.<name>``.
COUNTERS = {
    "retries": "Provider calls retried after a transient error",
    "throttles": "Provider calls refused for throttling",
    "invocations": "Handler invocations (HTTP requests, messages, schedules)",
    "errors": "Handler invocations that raised",
    "cold_starts": "First invocations of a process",
    "circuit.changes": "Circuit-breaker state changes",
    "deferred.parked": "Non-critical work parked in a backlog while its dependency was down",
    "deferred.replayed": "Backlog items replayed successfully",
    "deferred.replay_failures": "Backlog replays that failed for another reason than the dependency being down",
    "deferred.dead_letters": "Backlog items moved to their dead letters after failing every replay",
}

_providers: dict[str, Any] = {}
#: The app's own global providers while telemetry records into them: flushed, never shut down.
_adopted: dict[str, Any] = {}
#: ids of the providers :func:`configure` made global: ours, never adopted as the app's.
_made_global: set[int] = set()


def enabled() -> bool:
    """Whether provider calls are timed now (adopting the app's global OpenTelemetry set-up first)."""
    return _state.ENABLED or adopt_global()


def timed(resource: Any) -> Any:
    """``resource`` in its timed wrapper (see :mod:`overcast.telemetry.wrappers`); where a
    resource is opened. Adopts the app's global OpenTelemetry set-up if there is one."""
    from .wrappers import timed as wrap

    if not _state.ENABLED:
        adopt_global()
    return wrap(resource)


def redact(value: str) -> None:
    """Never let ``value`` appear in logs or metric attributes (``app.secret`` does this)."""
    if value and len(value) >= 4:  # shorter values would redact ordinary words
        _state.secrets.add(value)


def forget_secrets() -> None:
    _state.secrets.clear()


# Every value read through ``app.secret`` is redacted, whether or not telemetry is configured
# (the JSON log formatter uses the same set).
secret_resources.read_listeners.append(redact)


def _inject_trace_context(attributes: dict[str, str], room: int) -> None:
    """Put the current span's W3C trace context into an outgoing message (while configured)."""
    from .propagation import inject

    inject(attributes, room=room)


def configure(
    *,
    service_name: str | None = None,
    target: str | None = None,
    cloud: str | None = None,
    metric_readers: Iterable[MetricReader] | None = None,
    span_processors: Iterable[SpanProcessor] | None = None,
    set_global: bool = True,
) -> None:
    """Turn telemetry on.

    Args:
        service_name: ``service.name``; default ``OTEL_SERVICE_NAME``, else the SDK's.
        target, cloud: recorded on the resource and in every log line.
        metric_readers: readers to add (a test's ``InMemoryMetricReader``); without any,
            the exporters named by ``OTEL_METRICS_EXPORTER`` (and the cloud's native one).
        span_processors: likewise for spans and ``OTEL_TRACES_EXPORTER``.
        set_global: also make these the process's global OpenTelemetry providers when
            none is set yet, so the app's own spans join the same traces.
    """
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from . import _exporters

    shutdown()
    attributes: dict[str, Any] = {"overcast.target": target or "local", "cloud.provider": cloud or "local"}
    if service_name:
        attributes["service.name"] = service_name
    resource = Resource.create(attributes)
    readers = list(metric_readers) if metric_readers is not None else _exporters.metric_readers(cloud)
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    tracer_provider = TracerProvider(resource=resource)
    processors = list(span_processors) if span_processors is not None else _exporters.span_processors()
    for processor in processors:
        tracer_provider.add_span_processor(processor)
    if set_global:
        _set_global(meter_provider, tracer_provider)
    _providers.update(meter=meter_provider, tracer=tracer_provider)
    _start(meter_provider, tracer_provider if processors else None, target=target, cloud=cloud)


def _start(meter_provider: Any, tracer_provider: Any, *, target: str | None, cloud: str | None) -> None:
    """Create Overcast's instruments on these providers (the global API's or our own) and turn on."""
    from .. import __version__

    meter = meter_provider.get_meter(SCOPE, __version__)
    instruments = _state.instruments
    _state.reset()
    instruments.upstream_duration = meter.create_histogram(
        "overcast.upstream.duration", unit="s", description="Time spent in calls to the services behind resources"
    )
    instruments.replication_lag = meter.create_histogram(
        "overcast.replication.lag", unit="s", description="Time from a write's acknowledgement to a replica applying it"
    )
    instruments.handler_duration = meter.create_histogram(
        "overcast.handler.duration",
        unit="s",
        description="Run time of handler invocations (HTTP requests, messages, schedules)",
    )
    instruments.payload_size = meter.create_histogram(
        "overcast.upstream.payload.size",
        unit="By",
        description="Bytes of the item, object or message sent to or received from the service behind a resource",
    )
    meter.create_observable_gauge(
        "overcast.memory.peak", callbacks=[_observe_memory], unit="By", description="Peak resident memory"
    )
    instruments.counters = {
        name: meter.create_observable_counter(f"overcast.{name}", callbacks=[_observe(name)], description=text)
        for name, text in COUNTERS.items()
    }
    instruments.backlog = meter.create_observable_gauge(
        "overcast.queue.backlog", callbacks=[_observe_backlog], description="Messages waiting to be received"
    )
    instruments.deferred_age = meter.create_observable_gauge(
        "overcast.deferred.oldest_age",
        callbacks=[_observe_ages],
        unit="s",
        description="Age of the oldest parked item a backlog's replayer knows of",
    )
    instruments.tracer = tracer_provider.get_tracer(SCOPE, __version__) if tracer_provider is not None else None
    instruments.target = target or "local"
    instruments.cloud = cloud or "local"
    instruments.otel = True
    if _inject_trace_context not in queue_resources.attribute_injectors:
        queue_resources.attribute_injectors.append(_inject_trace_context)
    _state.ENABLED = True


def _app_providers() -> tuple[Any, Any]:
    """The SDK providers the app made global itself, (meter, tracer), each None if unset.
    Looks only at OpenTelemetry modules already imported: importing them is the app's choice."""
    meter = tracer = None
    metrics_api = sys.modules.get("opentelemetry.metrics")
    if metrics_api is not None:
        from opentelemetry.metrics import NoOpMeterProvider

        current = metrics_api.get_meter_provider()
        unset = isinstance(current, NoOpMeterProvider) or type(current).__name__ == "_ProxyMeterProvider"
        if not unset and id(current) not in _made_global:
            meter = current
    trace_api = sys.modules.get("opentelemetry.trace")
    if trace_api is not None:
        from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider

        current = trace_api.get_tracer_provider()
        if not isinstance(current, (ProxyTracerProvider, NoOpTracerProvider)) and id(current) not in _made_global:
            tracer = current
    return meter, tracer


def adopt_global() -> bool:
    """Turn on into the app's own global OpenTelemetry providers, if it set any and
    telemetry is not on yet; returns whether telemetry is on. Called where resources open
    and when a runtime starts; costs two dictionary lookups when OpenTelemetry is unused."""
    if _state.instruments.otel:
        return True
    if "opentelemetry.metrics" not in sys.modules and "opentelemetry.trace" not in sys.modules:
        return False
    if os.environ.get("OVERCAST_TELEMETRY", "").lower() in ("0", "false", "off"):
        return False
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    meter, tracer = _app_providers()
    if meter is None and tracer is None:
        return False
    if meter is None:
        from opentelemetry.metrics import NoOpMeterProvider

        meter = NoOpMeterProvider()
    _start(meter, tracer, target=os.environ.get("OVERCAST_TARGET"), cloud=None)
    _adopted.update(meter=meter, tracer=tracer)
    return True


def summarize_requests(listener: Callable[[RequestSummary], None] | None) -> None:
    """Time provider calls and hand each HTTP request's summary to ``listener`` (``overcast
    dev`` prints them). Needs no OpenTelemetry; keeps what :func:`configure` set up."""
    _state.request_listener = listener
    if listener is not None:
        _state.ENABLED = True
    elif not _state.instruments.otel and _state.call_listener is None:
        _state.ENABLED = False


def watch_calls(listener: Callable[[str, str, str, str, float, bool], None] | None) -> None:
    """Time provider calls and hand each one to ``listener`` as (upstream, operation, resource,
    outcome, seconds, made while serving an HTTP request), wherever it was made: requests,
    subscribers, schedules. The listener runs on the caller's thread and must not raise.
    ``overcast dev``'s console uses it; keeps what :func:`configure` set up."""
    _state.call_listener = listener
    if listener is not None:
        _state.ENABLED = True
    elif not _state.instruments.otel and _state.request_listener is None:
        _state.ENABLED = False


def watch_replication(listener: Callable[[str, str, float], None] | None) -> None:
    """Hand each replication lag to ``listener`` as (resource, replica, seconds), whether
    telemetry is on or not: ``overcast dev``'s console shows each member's. Must not raise."""
    _state.lag_listener = listener


def configure_from_env(*, target: str | None = None, cloud: str | None = None, default: bool = False) -> bool:
    """Turn telemetry on if the environment asks: ``OVERCAST_TELEMETRY=1``, an ``OTEL_*``
    exporter or endpoint, or ``default`` (a cloud runtime's own choice). Returns whether on."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    flag = os.environ.get("OVERCAST_TELEMETRY", "").lower()
    if flag in ("0", "false", "off"):
        return False
    wanted = (
        default
        or flag in ("1", "true", "on")
        or any(
            os.environ.get(name, "none").lower() != "none" for name in ("OTEL_METRICS_EXPORTER", "OTEL_TRACES_EXPORTER")
        )
        or bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    )
    if not wanted:
        return adopt_global()
    if adopt_global():
        return True  # the app's own OpenTelemetry set-up comes first
    try:
        configure(target=target, cloud=cloud)
    except ImportError as exc:
        from ..errors import MissingDependency

        raise MissingDependency(
            f"telemetry was asked for but OpenTelemetry is not installed ({exc}); "
            "run: pip install 'overcast[telemetry]'"
        ) from exc
    return True


def flush() -> None:
    """Export everything recorded so far, now (into the app's own providers too, when adopted)."""
    for provider in (*_providers.values(), *_adopted.values()):
        flush_provider = getattr(provider, "force_flush", None)
        if flush_provider is not None:
            flush_provider()


def shutdown() -> None:
    """Flush and turn telemetry off (timed wrappers stay, and cost one flag check)."""
    _state.ENABLED = _state.request_listener is not None or _state.call_listener is not None
    _state.instruments.otel = False
    if _inject_trace_context in queue_resources.attribute_injectors:
        queue_resources.attribute_injectors.remove(_inject_trace_context)
    _state.instruments.counters = {}
    _adopted.clear()
    _watched.clear()
    _state.instruments.tracer = None
    meter, tracer = _providers.pop("meter", None), _providers.pop("tracer", None)
    if meter is not None:
        meter.force_flush()
    _state.instruments.upstream_duration = None
    _state.instruments.replication_lag = None
    _state.instruments.handler_duration = None
    _state.instruments.payload_size = None
    for provider in (meter, tracer):
        if provider is not None:
            provider.shutdown()
    _state.reset()


def _drain() -> None:
    """Hand the durations recorded since the last collection to the histograms."""
    from ._instrument import drain

    if _state.instruments.upstream_duration is None:
        return
    for key, durations in list(_state.pending.items()):
        if durations:
            drain(key, durations)
    lag = _state.instruments.replication_lag
    for (resource, replica), seconds in list(_state.lags.items()):
        while seconds:
            lag.record(seconds.popleft(), {"resource": resource, "replica": replica})
    _drain_handlers_and_sizes()


def _drain_handlers_and_sizes() -> None:
    """Hand the handler run times and payload sizes recorded since the last collection to their histograms."""
    from ._instrument import drain_sizes

    for handler, times in list(_state.handler_times.items()):
        if times:
            _state.hand_over(_state.instruments.handler_duration, times, {"handler": handler})
    for key, sizes in list(_state.sizes.items()):
        if sizes:
            drain_sizes(key, sizes)


def _observe_memory(options: Any) -> Iterable[Any]:
    """The process's peak resident set size, in bytes (where the platform reports it)."""
    from opentelemetry.metrics import Observation

    try:
        import resource
    except ImportError:  # Windows: no getrusage
        return []
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return [Observation(peak if sys.platform == "darwin" else peak * 1024)]  # macOS reports bytes, Linux KiB


def _observe(name: str) -> Callable[[Any], Iterable[Any]]:
    from opentelemetry.metrics import Observation

    def callback(options: Any) -> Iterable[Any]:
        # A reader collects observable instruments before synchronous ones: the first
        # callback of a collection moves the pending durations into the histogram.
        _drain()
        series = _state.collect_totals(name)
        return [
            Observation(total, {k: redact_text(v) if _state.secrets else v for k, v in key})
            for key, total in series.items()
        ]

    return callback


_watched: dict[int, Any] = {}
_ages: dict[str, Callable[[], float | None]] = {}


def watch_backlog(*queues: Any) -> None:
    """Report ``overcast.queue.backlog`` (messages waiting, attribute ``resource``) for these
    queues at each collection; queues whose provider cannot count (no ``depth``) are skipped.
    The runtimes and ``overcast dev`` watch every queue an app's subscribers read."""
    for queue in queues:
        _watched[id(queue)] = queue


def watch_app(app: Any) -> None:
    """Watch the backlog of every queue ``app``'s subscribers read (a topic's: its subscription's)."""
    for sub in app.subscriptions:
        source = sub.source
        watch_backlog(source.subscription(sub.name) if isinstance(source, queue_resources.Topic) else source)


def watch_age(backlog: str, oldest: Callable[[], float | None]) -> None:
    """Report ``overcast.deferred.oldest_age`` (seconds, attribute ``backlog``) at each
    collection: ``oldest()`` is the wall-clock time the oldest item known was parked, or None."""
    _ages[backlog] = oldest


def _observe_ages(options: Any) -> Iterable[Any]:
    from opentelemetry.metrics import Observation

    now = time.time()
    found = [(backlog, oldest()) for backlog, oldest in list(_ages.items())]
    return [Observation(max(0.0, now - at), {"backlog": backlog}) for backlog, at in found if at is not None]


def _observe_backlog(options: Any) -> Iterable[Any]:
    from opentelemetry.metrics import Observation

    from ..errors import OvercastError

    observations = []
    for queue in list(_watched.values()):
        try:
            depth = queue.sync.depth()
        except OvercastError:
            continue
        observations.append(Observation(depth, {"resource": queue.name}))
    return observations


def _set_global(meter_provider: MeterProvider, tracer_provider: TracerProvider) -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider

    if isinstance(trace.get_tracer_provider(), (ProxyTracerProvider, NoOpTracerProvider)):
        trace.set_tracer_provider(tracer_provider)
        _made_global.add(id(tracer_provider))
    current = metrics.get_meter_provider()
    if isinstance(current, NoOpMeterProvider) or type(current).__name__ == "_ProxyMeterProvider":
        metrics.set_meter_provider(meter_provider)
        _made_global.add(id(meter_provider))
