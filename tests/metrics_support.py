"""Reading what an in-memory OpenTelemetry reader collected, for the tests that check counters."""

from __future__ import annotations

from typing import Any


def points(reader: Any, name: str) -> list[Any]:
    """The data points of metric ``name`` in one collection of ``reader``."""
    data = reader.get_metrics_data()
    return [
        point
        for resource_metrics in (data.resource_metrics if data else [])
        for scope in resource_metrics.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def total(reader: Any, name: str, **attributes: str) -> int:
    """The sum of counter ``name`` over the series whose attributes include ``attributes``."""
    return sum(
        int(point.value)
        for point in points(reader, name)
        if all(point.attributes.get(key) == value for key, value in attributes.items())
    )
