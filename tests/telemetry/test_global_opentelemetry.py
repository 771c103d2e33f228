"""An app that sets up OpenTelemetry itself, the standard way (global SDK providers, as
``opentelemetry-instrument`` or a vendor's distro do), sees Overcast's metrics and spans
with nothing else to call. Each case runs in its own interpreter: OpenTelemetry's global
providers can be set once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import overcast

_APP = """
import json, sys
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
spans = InMemorySpanExporter()
tracing = TracerProvider()
tracing.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(tracing)

import overcast

folder = sys.argv[1]
with open(folder + "/overcast.toml", "w") as config:
    config.write('[targets.local]\\nkv.users = "sqlite:///' + folder + '/kv.db"\\nqueue.jobs = "memory://jobs"\\n')
app = overcast.App("globals", config=folder)
users, jobs = app.kv("users"), app.queue("jobs")
users.sync.put("a", {"n": 1})
users.sync.get("a")
jobs.sync.send({"n": 1})
points = []
data = reader.get_metrics_data()
for resource_metrics in data.resource_metrics if data is not None else []:
    for scope in resource_metrics.scope_metrics:
        for metric in scope.metrics:
            for point in metric.data.data_points:
                points.append([scope.scope.name, scope.scope.version, metric.name, dict(point.attributes)])
print(json.dumps({
    "points": points,
    "spans": [[s.name, s.instrumentation_scope.name, dict(s.attributes)] for s in spans.get_finished_spans()],
}))
"""


def _run(tmp_path: Path, **env: str) -> dict[str, list[list[object]]]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OVERCAST_"))}
    done = subprocess.run(
        [sys.executable, "-c", _APP, str(tmp_path)],
        capture_output=True,
        text=True,
        env={**environment, **env},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, list[list[object]]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_apps_own_global_providers_receive_overcasts_metrics_and_spans(tmp_path: Path) -> None:
    seen = _run(tmp_path)
    durations = [p for p in seen["points"] if p[2] == "overcast.upstream.duration"]
    assert {(p[0], p[1]) for p in durations} == {("overcast", overcast.__version__)}
    calls = {tuple(p[3][k] for k in ("upstream", "operation", "resource", "outcome")) for p in durations}  # type: ignore[index]
    assert calls == {
        ("sqlite", "put", "users", "ok"),
        ("sqlite", "get", "users", "ok"),
        ("memory", "send", "jobs", "ok"),
    }
    by_name = {span[0]: span for span in seen["spans"]}
    assert set(by_name) == {"sqlite put", "sqlite get", "memory send"}
    _, scope, attributes = by_name["sqlite get"]
    assert scope == "overcast"
    assert attributes == {  # Overcast's own names, and the semantic conventions' where one exists
        "overcast.upstream": "sqlite",
        "overcast.operation": "get",
        "overcast.resource": "users",
        "db.system": "sqlite",
        "db.operation.name": "get",
        "db.collection.name": "users",
    }


def test_overcast_telemetry_off_keeps_out_of_the_apps_providers(tmp_path: Path) -> None:
    seen = _run(tmp_path, OVERCAST_TELEMETRY="0")
    assert [p for p in seen["points"] if str(p[2]).startswith("overcast.")] == []
    assert seen["spans"] == []


def test_without_opentelemetry_set_up_a_call_imports_none_of_it(tmp_path: Path) -> None:
    code = (
        "import sys, overcast\n"
        f"kv = overcast.open_kv('sqlite:///{tmp_path}/kv.db', name='users')\n"
        "kv.sync.put('a', {'n': 1}); kv.sync.get('a')\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"
