"""The Azure SDKs' retries are counted as ``overcast.retries`` under the provider call that
made them: a table store whose endpoint answers 503 Server Busy (a fake: Azurite cannot be
made busy) retries ``retries`` times, then raises Throttled; a refused connection (a real closed
port) is not retried; through Azurite nothing is retried."""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import overcast
from metrics_support import total
from overcast.errors import ConfigError, Throttled, Unavailable

# Azurite's published development account key (the same for every Azurite).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def _tables_at(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};"
        f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;",
    )


def test_refused_connections_are_not_retried(
    metric_reader: InMemoryMetricReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens: the call fails at once (the caller fails over) rather than retrying."""
    _tables_at(monkeypatch, _closed_port())
    name = f"down{uuid.uuid4().hex[:6]}"
    kv = overcast.open_kv(f"azuretables://{name}?retries=2", name=name)
    with pytest.raises(Unavailable):
        kv.sync.get("k")
    with pytest.raises(Unavailable):
        asyncio.run(kv.get("k"))
    assert total(metric_reader, "overcast.retries", upstream="azure_tables", operation="get", resource=name) == 0


class _Unavailable(http.server.BaseHTTPRequestHandler):
    """A FAKE endpoint that answers every request 503 Server Busy, as Azure storage does when
    it sheds load (Azurite cannot be made to)."""

    def do_GET(self) -> None:
        body = b'{"odata.error":{"code":"ServerBusy","message":{"value":"The server is busy."}}}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_busy() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_fake_busy_answers_are_retried_and_counted(
    fake_busy: int, metric_reader: InMemoryMetricReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tables_at(monkeypatch, fake_busy)
    name = f"busy{uuid.uuid4().hex[:6]}"
    kv = overcast.open_kv(f"azuretables://{name}?retries=2", name=name)
    with pytest.raises(Throttled):
        kv.sync.get("k")
    assert total(metric_reader, "overcast.retries", upstream="azure_tables", operation="get", resource=name) == 2

    async def read() -> Any:
        return await kv.get("k")

    with pytest.raises(Throttled):
        asyncio.run(read())
    assert total(metric_reader, "overcast.retries", upstream="azure_tables", operation="get", resource=name) == 4


def test_nothing_is_retried_on_a_healthy_azurite(azurite: Any, metric_reader: InMemoryMetricReader) -> None:
    name = f"up{uuid.uuid4().hex[:6]}"
    kv = overcast.open_kv(f"azuretables://{name}", name=name)
    asyncio.run(kv.create())
    kv.sync.put("k", {"v": 1})
    assert kv.sync.get("k") is not None
    assert total(metric_reader, "overcast.retries", upstream="azure_tables") == 0


def test_a_bad_retries_option_is_refused_naming_it(azurite: Any) -> None:
    with pytest.raises(ConfigError, match="retries"):
        overcast.open_kv("azuretables://badretries?retries=lots").sync.get("k")
