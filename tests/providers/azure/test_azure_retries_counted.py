"""The Azure SDKs' retries are counted as ``overcast.retries`` under the provider call that
made them: a table store whose endpoint refuses connections (a real closed port) retries
``retries`` times, then raises Unavailable; through Azurite nothing is retried."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import overcast
from metrics_support import total
from overcast.errors import ConfigError, Unavailable

# Azurite's published development account key (the same for every Azurite).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def test_refused_connections_are_retried_and_counted(
    metric_reader: InMemoryMetricReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _closed_port()
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};"
        f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;",
    )
    name = f"down{uuid.uuid4().hex[:6]}"
    kv = overcast.open_kv(f"azuretables://{name}?retries=2", name=name)
    with pytest.raises(Unavailable):
        kv.sync.get("k")
    assert total(metric_reader, "overcast.retries", upstream="azure_tables", operation="get", resource=name) == 2

    async def read() -> Any:
        return await kv.get("k")

    with pytest.raises(Unavailable):
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
