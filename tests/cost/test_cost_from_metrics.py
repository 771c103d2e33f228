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
    assert merged["resources"]["users"] == {"item_bytes": 700, "put": 1.0, "get": 2.0}  # sizes kept, ops measured
    assert merged["workload"]["requests"] == 5

    result = runner.invoke(
        cli,
        ["cost", str(tmp_path / "app"), "--from-metrics", str(export), "--requests", "1000000", "--json", "-t", "aws"],
    )
    assert result.exit_code == 0, result.output
    assert "measured: 5 invocations" in result.stderr
    users = json.loads(result.stdout)["target"]["resources"]["users"]
    units = {i["label"]: i["quantity"] for i in users["items"]}
    # a put and two gets a request; a 1 KB document (the default size) is an item over 1 KB with
    # the attributes dynamodb.py adds, so a put is two write units and a get one read unit
    assert units == {"wru": 2 * 1_000_000, "rru": 2_000_000}


def test_an_export_without_invocations_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"resourceMetrics": []}))
    with pytest.raises(InvalidArgument, match=r"no overcast\.invocations"):
        read_metrics(empty)
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json\n")
    with pytest.raises(InvalidArgument, match="metrics line 1: not OTLP/JSON"):
        read_metrics(garbled)
