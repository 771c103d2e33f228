"""``overcast cost --from-metrics``: a workload measured by Overcast's telemetry.

Reads an OTLP/JSON metrics export (what the OpenTelemetry Collector's file exporter writes,
one JSON object or one per line): ``overcast.invocations`` (every handler invocation) and
the count of ``overcast.upstream.duration`` per resource and operation give each resource's
operations per request (its calls divided by the invocations); ``overcast.handler.duration``
the mean run time of an invocation; ``overcast.memory.peak`` the memory (rounded up to
128 MB); ``overcast.upstream.payload.size`` each resource's mean item, object or message
size (what was written, else what was read back). Points are cumulative, so the largest
value of each series is taken. What telemetry cannot tell apart is said: a put is priced
as a plain put (a condition is not recorded), batch calls are not priced.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument

__all__ = ["Measured", "merge_measured", "read_metrics"]

#: telemetry's operation (the provider hook's name) -> the profile's operation
OPERATIONS = {
    "get": "get", "put": "put", "delete": "delete", "scan_page": "scan", "head": "head", "list_page": "list",
    "send": "send", "receive": "receive", "ack": "ack", "publish": "publish", "set": "set", "incr": "incr",
}  # fmt: skip
#: operations that cost nothing worth pricing or that a profile cannot name
IGNORED = frozenset({"create", "ping", "close"})


@dataclass
class Measured:
    """Invocations, calls per (resource, profile operation), and what could not be priced."""

    invocations: float
    calls: dict[str, dict[str, float]] = field(default_factory=dict)
    unpriced: dict[str, float] = field(default_factory=dict)
    #: mean run time of an invocation (ms), None when the export has no handler durations
    duration_ms: float | None = None
    #: the peak memory, rounded up to a multiple of 128 MB
    memory_mb: float | None = None
    #: resource -> mean bytes of what a call wrote (else of what it read back)
    sizes: dict[str, float] = field(default_factory=dict)


def _documents(text: str) -> Iterator[dict[str, Any]]:
    try:
        yield json.loads(text)
        return
    except json.JSONDecodeError:
        pass
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidArgument(f"metrics line {number}: not OTLP/JSON ({exc.msg})") from None


def _attributes(point: Mapping[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for attribute in point.get("attributes", []):
        value = attribute.get("value", {})
        found[attribute["key"]] = str(next(iter(value.values()), "")) if value else ""
    return found


Series = dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, float]]


def _series(path: Path) -> Series:
    """Largest value of each (metric, attributes) series, with its sum: histograms by count
    (and the sum of what they recorded), counters and gauges by value."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"metrics {path}: {exc.strerror or exc}") from None
    series: Series = {}
    for document in _documents(text):
        for scope in (s for r in document.get("resourceMetrics", []) for s in r.get("scopeMetrics", [])):
            for metric in scope.get("metrics", []):
                data = metric.get("histogram") or metric.get("sum") or metric.get("gauge") or {}
                for point in data.get("dataPoints", []):
                    raw = float(point.get("count", point.get("asInt", point.get("asDouble", 0))))
                    key = (metric.get("name", ""), tuple(sorted(_attributes(point).items())))
                    if raw >= series.get(key, (0.0, 0.0))[0]:
                        series[key] = (raw, float(point.get("sum", raw)))
    return series


def read_metrics(path: str | Path) -> Measured:
    """What the export at ``path`` measured."""
    series = _series(Path(path))
    invocations = sum(v for (name, _), (v, _) in series.items() if name == "overcast.invocations")
    if invocations <= 0:
        raise InvalidArgument(f"metrics {path}: no overcast.invocations: was telemetry on while the app served?")
    measured = Measured(invocations, duration_ms=_mean(series, "overcast.handler.duration", 1000.0))
    peak = max((v for (name, _), (v, _) in series.items() if name == "overcast.memory.peak"), default=0.0)
    if peak > 0:
        measured.memory_mb = 128.0 * math.ceil(peak / 2**20 / 128)
    measured.sizes = _sizes(series)
    for (name, attrs), (count, _) in series.items():
        if name != "overcast.upstream.duration":
            continue
        values = dict(attrs)
        operation, resource = values.get("operation", ""), values.get("resource", "")
        if operation in IGNORED:
            continue
        mapped = OPERATIONS.get(operation)
        if mapped is None:
            measured.unpriced[f"{resource}.{operation}"] = measured.unpriced.get(f"{resource}.{operation}", 0) + count
            continue
        per = measured.calls.setdefault(resource, {})
        per[mapped] = per.get(mapped, 0.0) + count
    return measured


def _mean(series: Series, metric: str, scale: float = 1.0) -> float | None:
    """The mean of everything histogram ``metric`` recorded, times ``scale`` (None if nothing)."""
    count = sum(c for (name, _), (c, _) in series.items() if name == metric)
    total = sum(t for (name, _), (_, t) in series.items() if name == metric)
    return total / count * scale if count else None


def _sizes(series: Series) -> dict[str, float]:
    """Each resource's mean payload: of what it was sent when anything was, else of what it returned."""
    sent: dict[str, list[float]] = {}
    read: dict[str, list[float]] = {}
    for (name, attrs), (count, total) in series.items():
        values = dict(attrs)
        if name != "overcast.upstream.payload.size" or not count:
            continue
        into = sent if values.get("network.io.direction") == "transmit" else read
        found = into.setdefault(values.get("resource", ""), [0.0, 0.0])
        found[0] += count
        found[1] += total
    return {name: total / count for name, (count, total) in {**read, **sent}.items()}


def merge_measured(data: Mapping[str, Any], measured: Measured, declared: Mapping[str, str]) -> dict[str, Any]:
    """The profile ``data`` with what was measured in place of its figures: each measured
    resource's operations per request (its volume and replicas kept) and item size, the run
    time and the memory; the measured invocations are the month's requests only when the
    profile gives none (a sample's count is seldom a month's)."""
    merged: dict[str, Any] = {key: dict(value) for key, value in data.items()}
    workload = merged.setdefault("workload", {})
    workload.setdefault("requests", measured.invocations)
    if measured.duration_ms is not None:
        workload["duration_ms"] = max(measured.duration_ms, 0.001)
    if measured.memory_mb is not None:
        workload["memory_mb"] = measured.memory_mb
    resources = merged.setdefault("resources", {})
    for name in set(measured.calls) | set(measured.sizes):
        if name not in declared:
            continue  # a resource opened outside the app's declarations
        kept = {
            k: v
            for k, v in dict(resources.get(name, {})).items()
            if k in ("item_bytes", "stored_gb", "replicas", "subscriptions")
        }
        calls = {op: count / measured.invocations for op, count in measured.calls.get(name, {}).items()}
        resources[name] = {**(kept if calls else dict(resources.get(name, {}))), **calls}
        if name in measured.sizes:
            resources[name]["item_bytes"] = max(1, round(measured.sizes[name]))
    return merged
