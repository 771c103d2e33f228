"""What the runtimes count besides the provider calls: a container's cold start on Cloud Run
(once, and the log lines' ``cold_start`` turning false after the first request), events a
runtime routes straight to a function, and throttled provider calls."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import overcast
from asgi_support import call
from metrics_support import total
from overcast import telemetry
from overcast.errors import Throttled
from overcast.providers.gcp import cloud_run_app
from overcast.providers.local.memory import MemoryKeyValueStore
from overcast.runtime.cloudevent import CloudEvent
from overcast.telemetry import logs, runtime

from .conftest import Recorded


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if this were a new container: nothing has run an invocation yet."""
    monkeypatch.setitem(runtime._cold, "start", True)
    monkeypatch.setitem(logs._cold, "start", True)
    yield


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logs.JsonFormatter(target="gcp", cloud="gcp"))
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_cloud_run_counts_one_cold_start_and_logs_turn_warm(recorded: Recorded, fresh_process: None) -> None:
    said = logging.getLogger("test.cloudrun.cold")
    said.setLevel(logging.INFO)
    lines = _Lines()
    said.addHandler(lines)

    async def api(scope: Any, receive: Any, send: Any) -> None:
        said.info("serving %s", scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = overcast.App("coldrun")
    app.http(api)
    asgi = cloud_run_app(app)
    try:
        assert [call(asgi, "GET", "/a")[0], call(asgi, "GET", "/b")[0], call(asgi, "GET", "/c")[0]] == [200, 200, 200]
    finally:
        said.removeHandler(lines)
    assert total(recorded.metrics, "overcast.cold_starts") == 1
    assert total(recorded.metrics, "overcast.cold_starts", handler="http") == 1
    assert total(recorded.metrics, "overcast.invocations", handler="http") == 3
    assert [line["cold_start"] for line in lines.lines] == [True, False, False]


def test_cloud_run_counts_events_routed_to_a_function(
    recorded: Recorded, fresh_process: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OVERCAST_EVENTS_VERIFY", "off")  # deliveries posted here carry no token
    app = overcast.App("routed")
    app.http(lambda scope, receive, send: None)

    def audit(event: CloudEvent) -> None:
        if event.id == "bad":
            raise ValueError("refused")

    asgi = cloud_run_app(app, routes={"com.example.*": audit})

    def post(event_id: str) -> int:
        headers = {
            "ce-specversion": "1.0",
            "ce-id": event_id,
            "ce-source": "//example/test",
            "ce-type": "com.example.audit",
            "content-type": "application/json",
        }
        return call(asgi, "POST", "/_overcast/events", b'{"x": 1}', headers)[0]

    assert [post("e1"), post("e2"), post("bad")] == [204, 204, 500]
    assert total(recorded.metrics, "overcast.invocations", handler="audit") == 3
    assert total(recorded.metrics, "overcast.errors", handler="audit") == 1
    assert total(recorded.metrics, "overcast.cold_starts", handler="delivery") == 1


class _ThrottledFakeKV(MemoryKeyValueStore):
    """A fake store whose reads the service refuses for throttling (no emulator throttles on
    demand); its writes are the memory store's own."""

    async def _get(self, key: str) -> Any:
        raise Throttled(f"{self.name}: read of {key!r} throttled", resource=self.name)

    def _get_blocking(self, key: str) -> Any:
        raise Throttled(f"{self.name}: read of {key!r} throttled", resource=self.name)


def test_throttled_calls_are_counted_with_fake_store(recorded: Recorded) -> None:
    kv = telemetry.timed(_ThrottledFakeKV("memory://throttled", name="throttled"))  # as open_kv does
    kv.sync.put("k", {"v": 1})
    for _ in range(3):
        with pytest.raises(Throttled):
            kv.sync.get("k")
    assert total(recorded.metrics, "overcast.throttles", resource="throttled", upstream="memory") == 3
    assert recorded.upstream(operation="get", resource="throttled", outcome="throttled") == 3
    assert recorded.upstream(operation="put", resource="throttled", outcome="ok") == 1


class _RetryingFakeKV(MemoryKeyValueStore):
    """A fake store whose SDK retries every read twice before it succeeds (what botocore's,
    azure-core's or google-api-core's retry hooks report through ``telemetry.retried``)."""

    def _get_blocking(self, key: str) -> Any:
        from overcast import telemetry

        telemetry.retried("memory", 2)
        return super()._get_blocking(key)

    async def _get(self, key: str) -> Any:
        return self._get_blocking(key)


def test_retries_are_counted_under_the_call_that_retried_with_fake_store(recorded: Recorded) -> None:
    import asyncio

    from overcast import telemetry

    kv = telemetry.timed(_RetryingFakeKV("memory://retrying", name="retrying"))  # as open_kv does
    kv.sync.put("k", {"v": 1})
    assert kv.sync.get("k") is not None
    assert asyncio.run(kv.get("k")) is not None
    telemetry.retried("dynamodb")  # outside any provider call: the upstream alone
    assert total(recorded.metrics, "overcast.retries", upstream="memory", operation="get", resource="retrying") == 4
    assert total(recorded.metrics, "overcast.retries", upstream="dynamodb") == 1


def test_replication_lag_is_a_histogram_per_replica(recorded: Recorded) -> None:
    from overcast import telemetry

    for seconds in (0.2, 0.4, 1.5):
        telemetry.replication_lag("orders", "firestore", seconds)
    telemetry.replication_lag("orders", "azure_tables", 3.0)
    points = recorded.points("overcast.replication.lag")
    by_replica = {p.attributes["replica"]: p for p in points}
    assert by_replica["firestore"].count == 3
    assert abs(by_replica["firestore"].sum - 2.1) < 1e-9
    assert by_replica["azure_tables"].count == 1
    assert {p.attributes["resource"] for p in points} == {"orders"}


def test_nothing_is_recorded_while_off() -> None:
    from overcast import telemetry
    from overcast.telemetry import _state

    assert not telemetry.enabled()
    telemetry.retried("dynamodb", 3)
    telemetry.replication_lag("orders", "firestore", 1.0)
    telemetry.count("throttles", upstream="dynamodb")
    assert not _state.lags
    assert all(not amounts for named in _state.increments.values() for amounts in named.values())
