"""Upstream latency for the console: p50/p95/p99 per upstream, operation and resource over the
last minutes, from every upstream call the telemetry times (:func:`overcast.telemetry.watch_calls`):
those of HTTP requests and those made outside them (subscribers, schedules, replays), with
nothing for the user to configure."""

from __future__ import annotations

import contextvars
import math
import time
from collections import deque
from typing import Any

__all__ = ["BUCKET", "WINDOW", "LatencyBook", "console_call", "percentile"]

#: seconds of calls kept and shown
WINDOW = 300.0
#: seconds per point of the chart
BUCKET = 10.0
#: calls kept per upstream operation at most (a busy app keeps the newest)
MAX_SAMPLES = 20_000

Key = tuple[str, str, str]

#: operations outside requests that are the dev server's machinery, not the app's: provisioning
#: at start-up, and the long polls of consumers and replayers (their time is the wait)
MACHINERY = frozenset({"create", "receive"})

#: True while the console serves a page: its own calls (browsing, health checks) are not the app's
console_call: contextvars.ContextVar[bool] = contextvars.ContextVar("overcast_console_call", default=False)


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending list (``fraction`` 0.95 for p95)."""
    if not ordered:
        raise ValueError("no values")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


class LatencyBook:
    """Recent upstream calls by (upstream, operation, resource): when, how long (ms), whether ok."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self.calls: dict[Key, deque[tuple[float, float, bool, bool]]] = {}
        #: (resource, replica) -> (when, lag in seconds) of the writes shipped to it
        self.lags: dict[tuple[str, str], deque[tuple[float, float]]] = {}

    def lag(self, resource: str, replica: str, seconds: float) -> None:
        """A replica applied a write ``seconds`` after it was acknowledged (a
        :func:`overcast.telemetry.watch_replication` listener)."""
        kept = self.lags.get((resource, replica))
        if kept is None:
            kept = self.lags.setdefault((resource, replica), deque(maxlen=MAX_SAMPLES))
        kept.append((time.time(), seconds))

    def lag_of(self, resource: str, replica: str, now: float) -> dict[str, Any] | None:
        """A replica's lag over the window: writes shipped, p99 and the last (ms); None if none."""
        recent = [lag for at, lag in list(self.lags.get((resource, replica), ())) if at >= now - self.window]
        if not recent:
            return None
        return {"count": len(recent), "p99": percentile(sorted(recent), 0.99) * 1000, "last": recent[-1] * 1000}

    def add(self, key: Key, at: float, ms: float, ok: bool, in_request: bool = True) -> None:
        """Keep one call. Safe from any thread without a lock: a deque's append is atomic, and
        the oldest calls fall off at :data:`MAX_SAMPLES` (the window is applied when shown)."""
        kept = self.calls.get(key)
        if kept is None:
            kept = self.calls.setdefault(key, deque(maxlen=MAX_SAMPLES))
        kept.append((at, ms, ok, in_request))

    def call(
        self, upstream: str, operation: str, resource: str, outcome: str, seconds: float, in_request: bool
    ) -> None:
        """One timed upstream call (an :func:`overcast.telemetry.watch_calls` listener)."""
        if console_call.get() or (operation in MACHINERY and not in_request):
            return  # the console's own calls; the dev server's provisioning and long polls
        self.add((upstream, operation, resource), time.time(), seconds * 1000, outcome == "ok", in_request)

    def rows(self, now: float) -> list[dict[str, Any]]:
        """One row per upstream operation with calls in the window: count, errors, percentiles, chart."""
        rows = []
        taken = sorted((key, list(kept)) for key, kept in list(self.calls.items()))  # copies made under the GIL
        for (upstream, operation, resource), kept in taken:
            recent = [call for call in kept if call[0] >= now - self.window]
            if not recent:
                continue
            ordered = sorted(call[1] for call in recent)
            rows.append(
                {
                    "upstream": upstream,
                    "operation": operation,
                    "resource": resource,
                    "count": len(recent),
                    "errors": sum(1 for call in recent if not call[2]),
                    "outside": sum(1 for call in recent if not call[3]),
                    "p50": percentile(ordered, 0.50),
                    "p95": percentile(ordered, 0.95),
                    "p99": percentile(ordered, 0.99),
                    "chart": self._chart(recent, now),
                }
            )
        return rows

    def _chart(self, recent: list[tuple[float, float, bool, bool]], now: float) -> dict[str, Any]:
        """p95 per :data:`BUCKET` over the window, as SVG points (0..100 wide, 0..30 high)."""
        count = int(self.window // BUCKET)
        buckets: list[list[float]] = [[] for _ in range(count)]
        for at, ms, *_ in recent:
            index = count - 1 - int((now - at) // BUCKET)
            if 0 <= index < count:
                buckets[index].append(ms)
        p95s = [percentile(sorted(b), 0.95) if b else None for b in buckets]
        top = max((v for v in p95s if v is not None), default=0.0) or 1.0
        points = [
            (round(i * 100 / max(1, count - 1), 1), round(30 - v / top * 28, 1))
            for i, v in enumerate(p95s)
            if v is not None
        ]
        return {"points": points, "line": " ".join(f"{x},{y}" for x, y in points), "top": top}
