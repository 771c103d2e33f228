"""Exporters: CloudWatch EMF and Cloud Logging lines, OTLP to a collector, OTEL_* variables.

The OTLP collector here is a fake (no collector binary installs from the registries): an
HTTP server that decodes the real OTLP protobuf requests the real exporter sends.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import overcast
from overcast import telemetry
from overcast.telemetry._exporters import CloudLoggingMetricExporter, EmbeddedMetricExporter, readers_for_test

ROOT = Path(__file__).resolve().parents[2]


def _flush(exporter: object, tmp_path: Path) -> list[dict[str, object]]:
    stream = io.StringIO()
    exporter.stream = stream  # type: ignore[attr-defined]
    readers = readers_for_test(exporter)  # type: ignore[arg-type]
    telemetry.configure(metric_readers=readers, span_processors=[], set_global=False)
    try:
        kv = overcast.open_kv(f"sqlite:///{tmp_path}/kv.db", name="orders")
        for i in range(5):
            kv.sync.put(f"k{i}", {"i": i})
        kv.sync.get("k1")
        telemetry.count("retries", upstream="sqlite", operation="put", resource="orders")
        for reader in readers:
            reader.force_flush()
    finally:
        telemetry.shutdown()
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_emf_lines_are_cloudwatch_metrics(tmp_path: Path) -> None:
    lines = _flush(EmbeddedMetricExporter(), tmp_path)
    puts = [x for x in lines if x.get("operation") == "put" and "overcast.upstream.duration" in x]
    assert len(puts) == 1
    line = puts[0]
    directive = line["_aws"]["CloudWatchMetrics"][0]  # type: ignore[index]
    assert directive["Namespace"] == "Overcast"
    assert sorted(directive["Dimensions"][0]) == ["operation", "outcome", "resource", "upstream"]
    assert directive["Metrics"] == [{"Name": "overcast.upstream.duration", "Unit": "Seconds"}]
    value = line["overcast.upstream.duration"]
    assert value["Count"] == 5 and sum(value["Counts"]) == 5  # type: ignore[index]
    assert all(value["Min"] <= v <= value["Max"] for v in value["Values"])  # type: ignore[index]
    retries = [x for x in lines if "overcast.retries" in x]
    assert retries and retries[0]["overcast.retries"] == 1
    assert retries[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] == "Count"  # type: ignore[index]


def test_cloud_logging_lines_are_structured_entries(tmp_path: Path) -> None:
    lines = _flush(CloudLoggingMetricExporter(), tmp_path)
    durations = [x for x in lines if x["metric"] == "overcast.upstream.duration"]
    gets = [x for x in durations if x["logging.googleapis.com/labels"]["operation"] == "get"]  # type: ignore[index]
    assert len(gets) == 1
    assert gets[0]["severity"] == "INFO" and gets[0]["count"] == 1 and gets[0]["unit"] == "s"
    assert gets[0]["logging.googleapis.com/labels"] == {  # type: ignore[comparison-overlap]
        "upstream": "sqlite",
        "operation": "get",
        "resource": "orders",
        "outcome": "ok",
    }


class _FakeCollector(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def fake_collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    received: ClassVar[list[tuple[str, bytes]]] = []
    handler = type("Collector", (_FakeCollector,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


def test_fake_collector_receives_otlp_metrics_and_traces_configured_by_otel_variables(
    fake_collector: tuple[str, list[tuple[str, bytes]]], tmp_path: Path
) -> None:
    endpoint, received = fake_collector
    script = textwrap.dedent(
        f"""
        import asyncio, overcast
        from overcast import telemetry
        assert telemetry.configure_from_env(target="local")
        kv = overcast.open_kv("sqlite:///{tmp_path}/kv.db", name="otlp-kv")
        kv.sync.put("a", {{"n": 1}})
        telemetry.shutdown()
        """
    )
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_SERVICE_NAME": "otlp-test",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci",
    }
    env.pop("OTEL_METRICS_EXPORTER", None)
    env.pop("OTEL_TRACES_EXPORTER", None)
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=60, cwd=tmp_path)
    paths = {path for path, _ in received}
    assert {"/v1/metrics", "/v1/traces"} <= paths
    metrics = ExportMetricsServiceRequest()
    metrics.ParseFromString(next(body for path, body in received if path == "/v1/metrics"))
    resource = {a.key: a.value.string_value for a in metrics.resource_metrics[0].resource.attributes}
    assert resource["service.name"] == "otlp-test" and resource["deployment.environment"] == "ci"
    names = {m.name for rm in metrics.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "overcast.upstream.duration" in names
    traces = ExportTraceServiceRequest()
    traces.ParseFromString(next(body for path, body in received if path == "/v1/traces"))
    spans = [s.name for rs in traces.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert "sqlite put" in spans


@pytest.mark.parametrize(
    ("variables", "on"),
    [
        ({}, False),
        ({"OVERCAST_TELEMETRY": "1", "OTEL_METRICS_EXPORTER": "none"}, True),
        ({"OTEL_METRICS_EXPORTER": "console"}, True),
        ({"OTEL_METRICS_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_METRICS_EXPORTER": "console", "OVERCAST_TELEMETRY": "off"}, False),
    ],
)
def test_the_environment_decides_whether_telemetry_is_on(
    variables: dict[str, str], on: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "OVERCAST_TELEMETRY")):
            monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    try:
        assert telemetry.configure_from_env() is on
        assert telemetry.enabled() is on
    finally:
        telemetry.shutdown()


def test_an_unknown_exporter_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "carrier-pigeon")
    with pytest.raises(overcast.errors.ConfigError, match="unknown exporter 'carrier-pigeon'"):
        telemetry.configure_from_env()
    assert not telemetry.enabled()
