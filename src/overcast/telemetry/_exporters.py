"""Where telemetry goes: the exporters named by ``OTEL_*_EXPORTER``, or the cloud's own form.

``OTEL_METRICS_EXPORTER`` / ``OTEL_TRACES_EXPORTER`` take a comma-separated list of
``otlp``, ``console``, ``none`` and, for metrics, Overcast's native forms: ``emf``
(CloudWatch embedded metric format on stdout, what Lambda turns into metrics with no
agent), ``gcp_logging`` (Cloud Logging structured JSON lines on stdout) and
``azure_monitor`` (Azure Monitor's OpenTelemetry exporter, with
``APPLICATIONINSIGHTS_CONNECTION_STRING``). Unset, metrics take the cloud's native form
(``emf`` on AWS, ``gcp_logging`` on Google Cloud, ``azure_monitor`` on Azure when a
connection string is set) plus ``otlp`` when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set;
traces go to ``otlp`` when an endpoint is set, else nowhere.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import IO, Any

from opentelemetry.sdk.metrics import Counter, Histogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ConsoleMetricExporter,
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from ..errors import ConfigError, MissingDependency

_DELTA: dict[type, AggregationTemporality] = {
    Counter: AggregationTemporality.DELTA,
    Histogram: AggregationTemporality.DELTA,
}


def _names(variable: str) -> list[str] | None:
    raw = os.environ.get(variable)
    if raw is None:
        return None
    return [name.strip().lower() for name in raw.split(",") if name.strip()]


def metric_readers(cloud: str | None) -> list[MetricReader]:
    names = _names("OTEL_METRICS_EXPORTER")
    if names is None:
        names = []
        from ..resources.registry import family_of_cloud  # each cloud's family names its exporter

        family = family_of_cloud(cloud)
        native = family.native_metrics if family else None
        if native and (native.requires_env is None or os.environ.get(native.requires_env)):
            names.append(native.exporter)
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            names.append("otlp")
    readers: list[MetricReader] = []
    for name in names:
        exporter = _metric_exporter(name)
        if exporter is not None:
            readers.append(PeriodicExportingMetricReader(exporter))
    return readers


def _metric_exporter(name: str) -> MetricExporter | None:
    if name == "none":
        return None
    if name == "otlp":
        return _otlp("metric")  # type: ignore[no-any-return]
    if name == "console":
        return ConsoleMetricExporter()
    if name == "emf":
        return EmbeddedMetricExporter()
    if name == "gcp_logging":
        return CloudLoggingMetricExporter()
    if name == "azure_monitor":
        try:
            from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter
        except ImportError as exc:
            raise MissingDependency(
                f"OTEL_METRICS_EXPORTER=azure_monitor needs azure-monitor-opentelemetry-exporter ({exc}); "
                "run: pip install 'overcast[azure,telemetry]'"
            ) from exc
        return AzureMonitorMetricExporter()  # type: ignore[no-any-return, unused-ignore]
    raise ConfigError(
        f"OTEL_METRICS_EXPORTER: unknown exporter {name!r}; known: otlp, console, none, emf, gcp_logging, azure_monitor"
    )


def span_processors() -> list[SpanProcessor]:
    names = _names("OTEL_TRACES_EXPORTER")
    if names is None:
        names = ["otlp"] if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else []
    processors: list[SpanProcessor] = []
    for name in names:
        if name == "none":
            continue
        if name == "otlp":
            processors.append(BatchSpanProcessor(_otlp("span")))
        elif name == "console":
            processors.append(BatchSpanProcessor(ConsoleSpanExporter()))
        else:
            raise ConfigError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r}; known: otlp, console, none")
    return processors


def _otlp(signal: str) -> Any:
    protocol = os.environ.get(
        f"OTEL_EXPORTER_OTLP_{'METRICS' if signal == 'metric' else 'TRACES'}_PROTOCOL",
        os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    )
    try:
        if protocol == "grpc":
            if signal == "metric":
                from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # type: ignore[import-not-found]
                    OTLPMetricExporter,
                )

                return OTLPMetricExporter()
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )

            return OTLPSpanExporter()
        if signal == "metric":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics

            return HttpMetrics(preferred_temporality=_DELTA)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans

        return HttpSpans()
    except ImportError as exc:
        raise MissingDependency(
            f"the OTLP exporter ({protocol}) is not installed ({exc}); run: pip install 'overcast[telemetry]'"
        ) from exc


class _LineExporter(MetricExporter):
    """Base of the exporters that print one JSON line per data point to a stream."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(preferred_temporality=_DELTA)
        self.stream = stream

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        out = self.stream or sys.stdout
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        line = self.line(metric.name, metric.unit or "", dict(point.attributes or {}), point)
                        if line is not None:
                            out.write(json.dumps(line, separators=(",", ":")) + "\n")
        out.flush()
        return MetricExportResult.SUCCESS

    def line(self, name: str, unit: str, attributes: dict[str, Any], point: Any) -> dict[str, Any] | None:
        raise NotImplementedError

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def _histogram_values(point: Any) -> tuple[list[float], list[int]]:
    """A histogram point as (representative value, count) per non-empty bucket."""
    values: list[float] = []
    counts: list[int] = []
    bounds = list(point.explicit_bounds)
    for index, bucket_count in enumerate(point.bucket_counts):
        if not bucket_count:
            continue
        low = bounds[index - 1] if index > 0 else point.min
        high = bounds[index] if index < len(bounds) else point.max
        low, high = max(low, point.min), min(high, point.max)
        values.append((low + high) / 2)
        counts.append(int(bucket_count))
    return values, counts


class EmbeddedMetricExporter(_LineExporter):
    """CloudWatch embedded metric format: Lambda's log agent turns each line into metrics.

    Histograms are written as EMF's ``Values``/``Counts`` arrays (one value per bucket),
    counters as a sum; dimensions are the point's attributes.
    """

    namespace = os.environ.get("OVERCAST_EMF_NAMESPACE", "Overcast")

    def line(self, name: str, unit: str, attributes: dict[str, Any], point: Any) -> dict[str, Any] | None:
        dimensions = sorted(attributes)
        if hasattr(point, "bucket_counts"):
            if not point.count:
                return None
            values, counts = _histogram_values(point)
            value: Any = {
                "Values": values,
                "Counts": counts,
                "Max": point.max,
                "Min": point.min,
                "Sum": point.sum,
                "Count": point.count,
            }
            emf_unit = "Seconds" if unit == "s" else "None"
        else:
            if not point.value:
                return None
            value, emf_unit = point.value, "Count"
        return {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [dimensions],
                        "Metrics": [{"Name": name, "Unit": emf_unit}],
                    }
                ],
            },
            **{key: str(val) for key, val in attributes.items()},
            name: value,
        }


class CloudLoggingMetricExporter(_LineExporter):
    """Cloud Logging structured JSON: one entry per data point, labelled by its attributes,
    ready for log-based metrics (Cloud Run sends stdout lines to Cloud Logging as they are)."""

    def line(self, name: str, unit: str, attributes: dict[str, Any], point: Any) -> dict[str, Any] | None:
        entry: dict[str, Any] = {
            "severity": "INFO",
            "message": name,
            "logging.googleapis.com/labels": {key: str(val) for key, val in attributes.items()},
            "metric": name,
            "unit": unit,
        }
        if hasattr(point, "bucket_counts"):
            if not point.count:
                return None
            entry.update(count=point.count, sum=point.sum, min=point.min, max=point.max)
        else:
            if not point.value:
                return None
            entry["value"] = point.value
        return entry


def readers_for_test(exporter: MetricExporter) -> Sequence[MetricReader]:
    """A reader that exports only when flushed (tests call ``force_flush``)."""
    return [PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)]
