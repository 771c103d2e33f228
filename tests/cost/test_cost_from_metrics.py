"""``--from-metrics``: an app served with telemetry on (the real OpenTelemetry SDK), its
metrics exported as OTLP/JSON, priced from the operations per request they measured."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_cost_cli import runner

from overcast import telemetry
from overcast.cli import cli
from overcast.cost.metrics import merge_measured, read_metrics
from overcast.errors import InvalidArgument

APP = """
import overcast

app = overcast.App({name!r})
users = app.kv("users")
sessions = app.cache("sessions")


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    await users.put("u1", {{"name": "Ada"}})
    await users.get("u1")
    await users.get("u1")
    await sessions.get("u1")
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": b"ok"}})


app.http(asgi)
"""


def _served_app(folder: Path, requests: int) -> None:
    """Serve ``requests`` requests through the app's ASGI entry, telemetry on."""
    from overcast.loader import load_app

    unique = uuid.uuid4().hex[:8]
    folder.mkdir(parents=True)
    (folder / "app.py").write_text(APP.format(name=f"m{unique}"))
    (folder / "overcast.toml").write_text(
        f'[app]\nentry = "app:app"\n\n[targets.local]\ndefaults.kv = "memory://{unique}-{{name}}"\n'
        f'defaults.cache = "memory://{unique}-{{name}}"\n\n'
        '[targets.aws]\nkv.users = "dynamodb://users"\ncache.sessions = "momento://sessions"\n'
    )
    app = load_app(str(folder))

    async def drive() -> None:
        transport = httpx.ASGITransport(app=app.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            for _ in range(requests):
                assert (await client.get("/")).status_code == 200

    import asyncio

    asyncio.run(drive())


def _export(reader: Any, path: Path) -> Path:
    """The reader's metrics as the OTLP/JSON an OpenTelemetry Collector's file exporter writes."""
    from google.protobuf import json_format
    from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import encode_metrics

    path.write_text(json_format.MessageToJson(encode_metrics(reader.get_metrics_data())), encoding="utf-8")
    return path


def test_operations_per_request_come_from_what_telemetry_measured(tmp_path: Path, metric_reader: Any) -> None:
    _served_app(tmp_path / "app", requests=5)
    export = _export(metric_reader, tmp_path / "metrics.json")
    measured = read_metrics(export)
    assert measured.invocations == 5
    assert measured.calls["users"] == {"put": 5, "get": 10} and measured.calls["sessions"] == {"get": 5}
    merged = merge_measured({"resources": {"users": {"get": 9, "item_bytes": 700}}}, measured, {"users": "kv"})
    # ops measured; the size too: what the put sent, the document as JSON
    document = len(json.dumps({"name": "Ada"}, separators=(",", ":")).encode())
    assert merged["resources"]["users"] == {"item_bytes": document, "put": 1.0, "get": 2.0}
    assert merged["workload"]["requests"] == 5

    result = runner.invoke(
        cli,
        ["cost", str(tmp_path / "app"), "--from-metrics", str(export), "--requests", "1000000", "--json", "-t", "aws"],
    )
    assert result.exit_code == 0, result.output
    assert "measured: 5 invocations" in result.stderr and f"users {document} bytes an item" in result.stderr
    users = json.loads(result.stdout)["target"]["resources"]["users"]
    units = {i["label"]: i["quantity"] for i in users["items"]}
    # a put and two gets a request; the measured 15-byte document is an item under 1 KB with
    # the attributes dynamodb.py adds, so a put is one write unit and a get one read unit
    assert units == {"wru": 1_000_000, "rru": 2_000_000}


def test_run_time_memory_and_sizes_are_measured_too(tmp_path: Path, metric_reader: Any) -> None:
    """The handler-duration histogram, the peak-memory gauge and the payload-size histogram,
    through the real SDK and OTLP/JSON, become the profile's duration, memory and sizes."""
    _served_app(tmp_path / "app", requests=4)
    data = metric_reader.get_metrics_data()
    points = {
        metric.name: metric.data.data_points
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    (handled,) = points["overcast.handler.duration"]
    assert handled.attributes == {"handler": "http"} and handled.count == 4 and handled.sum > 0
    sizes = {
        (p.attributes["resource"], p.attributes["operation"], p.attributes["network.io.direction"]): p
        for p in points["overcast.upstream.payload.size"]
    }
    assert set(sizes) == {("users", "put", "transmit")}  # the cache missed: no bytes came back
    assert sizes["users", "put", "transmit"].count == 4
    (peak,) = points["overcast.memory.peak"]
    export = _export(metric_reader, tmp_path / "metrics.json")
    measured = read_metrics(export)
    assert measured.duration_ms == pytest.approx(handled.sum / 4 * 1000)
    assert measured.memory_mb is not None and measured.memory_mb % 128 == 0
    assert measured.memory_mb * 2**20 >= peak.value > (measured.memory_mb - 128) * 2**20
    merged = merge_measured({"workload": {"duration_ms": 9999, "memory_mb": 64}}, measured, {"users": "kv"})
    assert merged["workload"]["duration_ms"] == measured.duration_ms
    assert merged["workload"]["memory_mb"] == measured.memory_mb


def test_a_bucket_read_only_is_sized_by_what_came_back(tmp_path: Path, metric_reader: Any) -> None:
    """A resource only read is sized by the bytes its reads returned."""
    import overcast

    bucket = overcast.open_bucket(f"memory://sized-{uuid.uuid4().hex[:6]}", name="assets")
    inner = bucket._inner  # the provider itself: a write that telemetry does not see
    inner.sync.put("logo", b"x" * 3000)
    for _ in range(3):
        assert len(bucket.sync.get("logo")) == 3000
    telemetry.count("invocations", handler="http")
    measured = read_metrics(_export(metric_reader, tmp_path / "metrics.json"))
    assert measured.sizes == {"assets": 3000.0}
    assert measured.calls["assets"] == {"get": 3}


def test_an_export_without_invocations_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"resourceMetrics": []}))
    with pytest.raises(InvalidArgument, match=r"no overcast\.invocations"):
        read_metrics(empty)
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json\n")
    with pytest.raises(InvalidArgument, match="metrics line 1: not OTLP/JSON"):
        read_metrics(garbled)
