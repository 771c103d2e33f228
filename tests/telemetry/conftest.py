"""Telemetry on, with in-memory readers (the real OpenTelemetry SDK), and off again after."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from overcast import telemetry


@dataclass
class Recorded:
    metrics: InMemoryMetricReader
    spans: InMemorySpanExporter

    def points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        found: list[Any] = []
        if data is None:
            return found
        for resource_metrics in data.resource_metrics:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def upstream(self, **attributes: str) -> int:
        """How many calls were recorded with these attributes."""
        return sum(
            p.count
            for p in self.points("overcast.upstream.duration")
            if all(p.attributes.get(k) == v for k, v in attributes.items())
        )


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    metrics = InMemoryMetricReader()
    spans = InMemorySpanExporter()
    telemetry.configure(
        service_name="telemetry-test",
        metric_readers=[metrics],
        span_processors=[SimpleSpanProcessor(spans)],
        set_global=False,
    )
    yield Recorded(metrics, spans)
    telemetry.shutdown()
    telemetry.summarize_requests(None)
    telemetry.forget_secrets()
