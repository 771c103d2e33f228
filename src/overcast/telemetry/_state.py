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


def replication_lag(resource: str, replica: str, seconds: float) -> None:
    """A replica of ``resource`` applied a write ``seconds`` after the primary acknowledged
    it: recorded in ``overcast.replication.lag``. Free while off."""
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
    with totals_lock:
        for named in increments.values():
            for amounts in named.values():
                amounts.clear()  # emptied in place: resolved series stay valid
        totals.clear()
