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
from overcast.errors import Throttled
from overcast.providers.gcp import cloud_run_app
from overcast.providers.local.memory import MemoryKeyValueStore
from overcast.runtime.cloudevent import CloudEvent
from overcast.telemetry import logs, runtime

from .conftest import Recorded


def _call(asgi: Any, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> int:
    import asyncio

    async def run() -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 8080),
        }
        status = 0
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await asgi(scope, receive, send)
        return status

    return asyncio.run(run())


def _total(recorded: Recorded, name: str, **attributes: str) -> int:
    return sum(
        int(p.value)
        for p in recorded.points(name)
        if all(p.attributes.get(k) == v for k, v in attributes.items())
    )


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
        assert [_call(asgi, "GET", "/a"), _call(asgi, "GET", "/b"), _call(asgi, "GET", "/c")] == [200, 200, 200]
    finally:
        said.removeHandler(lines)
    assert _total(recorded, "overcast.cold_starts") == 1
    assert _total(recorded, "overcast.cold_starts", handler="http") == 1
    assert _total(recorded, "overcast.invocations", handler="http") == 3
    assert [line["cold_start"] for line in lines.lines] == [True, False, False]


def test_cloud_run_counts_events_routed_to_a_function(recorded: Recorded, fresh_process: None) -> None:
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
        return _call(asgi, "POST", "/_overcast/events", b'{"x": 1}', headers)

    assert [post("e1"), post("e2"), post("bad")] == [204, 204, 500]
    assert _total(recorded, "overcast.invocations", handler="audit") == 3
    assert _total(recorded, "overcast.errors", handler="audit") == 1
    assert _total(recorded, "overcast.cold_starts", handler="delivery") == 1


class _ThrottledFakeKV(MemoryKeyValueStore):
    """A fake store whose reads the service refuses for throttling (no emulator throttles on
    demand); its writes are the memory store's own."""

    async def _get(self, key: str) -> Any:
        raise Throttled(f"{self.name}: read of {key!r} throttled", resource=self.name)

    def _get_blocking(self, key: str) -> Any:
        raise Throttled(f"{self.name}: read of {key!r} throttled", resource=self.name)


def test_throttled_calls_are_counted_with_fake_store(recorded: Recorded) -> None:
    kv = _ThrottledFakeKV("memory://throttled", name="throttled")
    kv.sync.put("k", {"v": 1})
    for _ in range(3):
        with pytest.raises(Throttled):
            kv.sync.get("k")
    assert _total(recorded, "overcast.throttles", resource="throttled", upstream="memory") == 3
    assert recorded.upstream(operation="get", resource="throttled", outcome="throttled") == 3
    assert recorded.upstream(operation="put", resource="throttled", outcome="ok") == 1
