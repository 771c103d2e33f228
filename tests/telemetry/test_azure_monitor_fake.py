"""Azure Monitor through its real OpenTelemetry exporter, against a fake ingestion endpoint.

No Application Insights server runs here: the fake is an HTTP server that accepts the
exporter's real ``/v2.1/track`` requests, so the test proves what Overcast sends and how
it is configured (``APPLICATIONINSIGHTS_CONNECTION_STRING``), not Azure's side."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest


class _FakeIngestion(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, list[dict[str, Any]]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        items = json.loads(body)
        self.received.append((self.path, items))
        reply = json.dumps({"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def fake_ingestion() -> Iterator[tuple[int, list[tuple[str, list[dict[str, Any]]]]]]:
    received: list[tuple[str, list[dict[str, Any]]]] = []
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), type("Ingestion", (_FakeIngestion,), {"received": received})
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], received
    server.shutdown()


def test_fake_ingestion_gets_upstream_metrics_on_the_azure_target(
    fake_ingestion: tuple[int, list[tuple[str, list[dict[str, Any]]]]], tmp_path: Any
) -> None:
    port, received = fake_ingestion
    script = textwrap.dedent(
        """
        import overcast
        from overcast import telemetry
        assert telemetry.configure_from_env(target="azure", cloud="azure")
        kv = overcast.open_kv("memory://orders", name="orders")
        kv.sync.put("a", {"n": 1})
        telemetry.shutdown()
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        APPLICATIONINSIGHTS_CONNECTION_STRING=(
            f"InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:{port}/"
        ),
        APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
        OVERCAST_TELEMETRY="1",
        TMPDIR=str(tmp_path),
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=60, cwd=tmp_path)
    items = [item for path, batch in received if path == "/v2.1/track" for item in batch]
    metrics = [i["data"]["baseData"] for i in items if i["name"].endswith(".Metric")]
    upstream = [m for m in metrics if m["metrics"][0]["name"] == "overcast.upstream.duration"]
    assert upstream, items
    assert upstream[0]["properties"] == {
        "upstream": "memory",
        "operation": "put",
        "resource": "orders",
        "outcome": "ok",
    }
    assert upstream[0]["metrics"][0]["count"] == 1
