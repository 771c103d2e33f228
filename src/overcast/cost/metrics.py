"""``overcast cost --from-metrics``: operations per request measured by Overcast's telemetry.

Reads an OTLP/JSON metrics export (what the OpenTelemetry Collector's file exporter writes,
one JSON object or one per line): ``overcast.invocations`` (every handler invocation) and
the count of ``overcast.upstream.duration`` per resource and operation. Each resource's
operations per request are its calls divided by the invocations. Points are cumulative,
so the largest value of each series is taken. What telemetry cannot tell apart is said:
a put is priced as a plain put (a condition is not recorded), batch calls are not priced.
"""

from __future__ import annotations

import json
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


def _series(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Largest value of each (metric, attributes) series: histograms by count, sums by value."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"metrics {path}: {exc.strerror or exc}") from None
    series: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for document in _documents(text):
        for scope in (s for r in document.get("resourceMetrics", []) for s in r.get("scopeMetrics", [])):
            for metric in scope.get("metrics", []):
                data = metric.get("histogram") or metric.get("sum") or {}
                for point in data.get("dataPoints", []):
                    raw = point.get("count", point.get("asInt", point.get("asDouble", 0)))
                    key = (metric.get("name", ""), tuple(sorted(_attributes(point).items())))
                    series[key] = max(series.get(key, 0.0), float(raw))
    return series


def read_metrics(path: str | Path) -> Measured:
    """What the export at ``path`` measured."""
    series = _series(Path(path))
    invocations = sum(v for (name, _), v in series.items() if name == "overcast.invocations")
    if invocations <= 0:
        raise InvalidArgument(f"metrics {path}: no overcast.invocations: was telemetry on while the app served?")
    measured = Measured(invocations)
    for (name, attrs), count in series.items():
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


def merge_measured(data: Mapping[str, Any], measured: Measured, declared: Mapping[str, str]) -> dict[str, Any]:
    """The profile ``data`` with each measured resource's operations per request replaced by
    the measured ones (its sizes, volume and replicas kept), and the measured invocations as
    the month's requests unless the profile gives them."""
    merged: dict[str, Any] = {key: dict(value) for key, value in data.items()}
    workload = merged.setdefault("workload", {})
    workload.setdefault("requests", measured.invocations)
    resources = merged.setdefault("resources", {})
    for name, calls in measured.calls.items():
        if name not in declared:
            continue  # a resource opened outside the app's declarations
        kept = {
            k: v
            for k, v in dict(resources.get(name, {})).items()
            if k in ("item_bytes", "stored_gb", "replicas", "subscriptions")
        }
        resources[name] = {**kept, **{op: count / measured.invocations for op, count in calls.items()}}
    return merged
