"""Upstream latency for the console: p50/p95/p99 per upstream, operation and resource over the
last minutes, from the upstream calls the telemetry reports with each HTTP request
(:func:`overcast.telemetry.summarize_requests`), with nothing for the user to configure."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

__all__ = ["BUCKET", "WINDOW", "LatencyBook", "percentile"]

#: seconds of calls kept and shown
WINDOW = 300.0
#: seconds per point of the chart
BUCKET = 10.0
#: calls kept per upstream operation at most (a busy app keeps the newest)
MAX_SAMPLES = 20_000

Key = tuple[str, str, str]


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending list (``fraction`` 0.95 for p95)."""
    if not ordered:
        raise ValueError("no values")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


class LatencyBook:
    """Recent upstream calls by (upstream, operation, resource): when, how long (ms), whether ok."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self.calls: dict[Key, deque[tuple[float, float, bool]]] = {}

    def add(self, key: Key, at: float, ms: float, ok: bool) -> None:
        kept = self.calls.get(key)
        if kept is None:
            kept = self.calls[key] = deque(maxlen=MAX_SAMPLES)
        kept.append((at, ms, ok))
        while kept and kept[0][0] < at - self.window:
            kept.popleft()

    def rows(self, now: float) -> list[dict[str, Any]]:
        """One row per upstream operation with calls in the window: count, errors, percentiles, chart."""
        rows = []
        for (upstream, operation, resource), kept in sorted(self.calls.items()):
            recent = [call for call in list(kept) if call[0] >= now - self.window]
            if not recent:
                continue
            ordered = sorted(ms for _, ms, _ in recent)
            rows.append(
                {
                    "upstream": upstream,
                    "operation": operation,
                    "resource": resource,
                    "count": len(recent),
                    "errors": sum(1 for _, _, ok in recent if not ok),
                    "p50": percentile(ordered, 0.50),
                    "p95": percentile(ordered, 0.95),
                    "p99": percentile(ordered, 0.99),
                    "chart": self._chart(recent, now),
                }
            )
        return rows

    def _chart(self, recent: list[tuple[float, float, bool]], now: float) -> dict[str, Any]:
        """p95 per :data:`BUCKET` over the window, as SVG points (0..100 wide, 0..30 high)."""
        count = int(self.window // BUCKET)
        buckets: list[list[float]] = [[] for _ in range(count)]
        for at, ms, _ in recent:
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
