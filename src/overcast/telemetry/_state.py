"""What the instrumented code checks on its hot path: one module-level flag.

Nothing here imports OpenTelemetry. While telemetry is off (the default), every hook
below returns after reading ``ENABLED``; :func:`overcast.telemetry.configure` turns it
on and fills in the instruments.
"""

from __future__ import annotations

import contextvars
import threading
from array import array
from collections import deque
from typing import Any

from ..resources.records import field, record

#: True once telemetry is configured; read on every instrumented call.
ENABLED = False


@record
class Instruments:
    """The OpenTelemetry instruments and tracer, set by ``configure``."""

    upstream_duration: Any = None
    replication_lag: Any = None
    #: ``overcast.handler.duration`` and ``overcast.upstream.payload.size`` (set with the others)
    handler_duration: Any = None
    payload_size: Any = None
    counters: dict[str, Any] = field(default_factory=dict)
    tracer: Any = None
    backlog: Any = None
    deferred_age: Any = None
    #: OpenTelemetry is configured: trace context is propagated and read into logs.
    otel: bool = False
    target: str = "local"
    cloud: str = "local"


instruments = Instruments()

#: Upstream calls of the current request, for the dev server's per-request summary.
request_calls: contextvars.ContextVar[list[tuple[str, str, str, str, float]] | None] = contextvars.ContextVar(
    "overcast_request_calls", default=None
)

#: Called with each request's summary when set (``overcast dev`` prints it).
request_listener: Any = None

#: Called with every timed upstream call when set, inside requests or not (``overcast dev``'s
#: console keeps the latency of each upstream operation): (upstream, operation, resource,
#: outcome, seconds, whether it was made while serving an HTTP request).
call_listener: Any = None

#: The handler of the runtime invocation under way (Lambda, Azure Functions), which counts
#: it: the HTTP middleware then counts nothing itself.
invocation: contextvars.ContextVar[str | None] = contextvars.ContextVar("overcast_invocation", default=None)

#: (upstream, resource, operation) while an instrumented provider call runs: a hook calling
#: another hook counts once, and an SDK's retry hook knows which call it retried.
in_upstream: contextvars.ContextVar[tuple[str, str, str] | None] = contextvars.ContextVar(
    "overcast_in_upstream", default=None
)

#: Values read through ``app.secret``: replaced by ``[REDACTED]`` in logs and metric attributes.
secrets: set[str] = set()

REDACTED = "[REDACTED]"


def redact_text(text: str) -> str:
    """``text`` with every known secret value replaced."""
    for value in secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


# The hot path only appends here; OpenTelemetry reads it when a reader collects (an
# OpenTelemetry ``record``/``add`` costs microseconds, an append a tenth of one).

#: (upstream, operation, resource, outcome) -> durations not yet handed to the histogram,
#: as C doubles (8 bytes each: a bound of 65,536 per series is 512 KiB at most).
pending: dict[tuple[str, str, str, str], array[float]] = {}

#: Held while durations move from ``pending`` to the histogram (the reader's collection
#: and a series at its bound may drain at once); appends never take it.
draining = threading.Lock()

#: (resource, replica) -> replication lags (seconds) not yet handed to their histogram.
lags: dict[tuple[str, str], deque[float]] = {}

#: handler -> run times (seconds) of its invocations not yet handed to ``overcast.handler.duration``.
handler_times: dict[str, array[float]] = {}

#: (upstream, operation, resource, direction) -> payload sizes (bytes) not yet handed to
#: ``overcast.upstream.payload.size``; direction is ``transmit`` (sent) or ``receive``.
sizes: dict[tuple[str, str, str, str], array[float]] = {}

#: Values kept for one series of the two above before they are handed over at once.
MAX_KEPT = 65536

#: counter name -> attribute items -> amounts added since the last collection.
increments: dict[str, dict[tuple[tuple[str, str], ...], deque[int]]] = {}
#: counter name -> attribute items -> total up to the last collection (the collector's own).
totals: dict[str, dict[tuple[tuple[str, str], ...], int]] = {}
totals_lock = threading.Lock()


def series(name: str, **attributes: str) -> deque[int]:
    """The increments of counter ``name`` with these attributes: a hot path that counts the
    same thing every time (a runtime's invocations) resolves it once and appends to it.
    :func:`reset` empties it in place, so a resolved series stays valid."""
    key = tuple(attributes.items())
    named = increments.setdefault(name, {})
    amounts = named.get(key)
    if amounts is None:
        amounts = named.setdefault(key, deque())
    return amounts


def count(name: str, amount: int = 1, **attributes: str) -> None:
    """Add to counter ``overcast.<name>`` (``retries``, ``throttles``, ...); free while off."""
    if not ENABLED:
        return
    key = tuple(attributes.items())
    try:
        series = increments[name]
    except KeyError:
        series = increments.setdefault(name, {})
    amounts = series.get(key)
    if amounts is None:
        amounts = series.setdefault(key, deque())
    amounts.append(amount)


#: Called with every replication lag when set, telemetry on or off (``overcast dev``'s console
#: shows each member's): (resource, replica, seconds).
lag_listener: Any = None


def replication_lag(resource: str, replica: str, seconds: float) -> None:
    """A replica of ``resource`` applied a write ``seconds`` after the primary acknowledged
    it: recorded in ``overcast.replication.lag``. Free while off."""
    if lag_listener is not None:
        lag_listener(resource, replica, seconds)
    if not ENABLED:
        return
    key = (resource, replica)
    found = lags.get(key)
    if found is None:
        found = lags.setdefault(key, deque())
    found.append(seconds)


def retried(upstream: str, amount: int = 1) -> None:
    """An SDK retried ``amount`` requests (after a throttle, a 5xx, a dropped connection):
    count ``overcast.retries`` under the provider call under way (its upstream, operation
    and resource), or under ``upstream`` alone outside one. Free while off."""
    if not ENABLED or amount <= 0:
        return
    call = in_upstream.get()
    if call is None:
        count("retries", amount, upstream=upstream)
    else:
        count("retries", amount, upstream=call[0], operation=call[2], resource=call[1])


def handled(handler: str, seconds: float) -> None:
    """An invocation of ``handler`` ran ``seconds``: recorded in ``overcast.handler.duration``
    (an append; the histogram gets it at the next collection). Free while off."""
    if not ENABLED or not instruments.otel:
        return
    times = handler_times.get(handler)
    if times is None:
        times = handler_times.setdefault(handler, array("d"))
    times.append(seconds)
    if len(times) >= MAX_KEPT:
        hand_over(instruments.handler_duration, times, {"handler": handler})


def hand_over(histogram: Any, values: array[float], attributes: dict[str, str]) -> None:
    """Record ``values`` in ``histogram`` and empty them (those appended meanwhile stay)."""
    with draining:
        taken = values[: len(values)]
        del values[: len(taken)]
    if histogram is not None:
        for value in taken:
            histogram.record(value, attributes)


def collect_totals(name: str) -> dict[tuple[tuple[str, str], ...], int]:
    """Fold the increments of counter ``name`` into its totals and return them."""
    with totals_lock:
        running = totals.setdefault(name, {})
        for key, amounts in list(increments.get(name, {}).items()):
            if not amounts and key not in running:
                continue  # resolved but never counted since the last reset
            added = 0
            while amounts:
                added += amounts.popleft()
            running[key] = running.get(key, 0) + added
        return dict(running)


#: ``OVERCAST_TELEMETRY_FLUSH`` as read by the first invocation after :func:`reset`.
flush_every: float | None = None
#: ``time.monotonic()`` before which :func:`runtime.after_invocation` has nothing to do.
flush_due = 0.0


def reset() -> None:
    global flush_every, flush_due
    flush_every = None
    flush_due = 0.0
    pending.clear()
    lags.clear()
    handler_times.clear()
    sizes.clear()
    with totals_lock:
        for named in increments.values():
            for amounts in named.values():
                amounts.clear()  # emptied in place: resolved series stay valid
        totals.clear()
