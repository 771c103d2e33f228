"""The instruments ``overcast cost --from-metrics`` reads besides the call counts: the run time
of every invocation (``overcast.handler.duration``) on each runtime's path, the bytes each
call sends or reads back (``overcast.upstream.payload.size``), and the process's peak memory."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import overcast
from asgi_support import call
from overcast import telemetry
from overcast.providers.aws import lambda_handler
from overcast.providers.gcp import cloud_run_app
from overcast.runtime.cloudevent import CloudEvent
from overcast.runtime.dispatch import run_schedule
from overcast.telemetry import _state, runtime

from .conftest import Recorded

FIXTURES = Path(__file__).parents[1] / "fixtures" / "aws"


def _durations(recorded: Recorded) -> dict[str, Any]:
    return {p.attributes["handler"]: p for p in recorded.points("overcast.handler.duration")}


def test_a_runtime_invocation_records_its_run_time(recorded: Recorded) -> None:
    with runtime.invocation(handler="blob/uploads", request="r1"):
        time.sleep(0.02)
    with pytest.raises(ValueError), runtime.invocation(handler="blob/uploads", request="r2"):
        raise ValueError("refused")
    runtime.counted("audit", failed=False, seconds=0.25)
    point = _durations(recorded)["blob/uploads"]
    assert point.count == 2 and 0.02 <= point.sum < 1.0
    assert _durations(recorded)["audit"].sum == pytest.approx(0.25)


def test_http_on_cloud_run_and_lambda_records_each_request(recorded: Recorded) -> None:
    async def api(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = overcast.App("timed")
    app.http(api)
    asgi = cloud_run_app(app)
    assert [call(asgi, "GET", "/a")[0], call(asgi, "GET", "/b")[0]] == [200, 200]
    event = json.loads((FIXTURES / "aws-lambda-go/events/apigw-v2-request-no-authorizer.json").read_text())

    class Context:
        aws_request_id = "req-d"

    assert lambda_handler(app, lifespan="off")(event, Context())["statusCode"] == 200
    point = _durations(recorded)["http"]
    assert point.count == 3 and point.sum >= 0.03


def test_schedules_and_routed_events_record_their_run_time(recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERCAST_EVENTS_VERIFY", "off")  # the event posted here carries no OIDC token
    app = overcast.App("timed-jobs")

    @app.schedule("rate(1 hour)", name="nightly")
    def nightly() -> None:
        time.sleep(0.01)

    asyncio.run(run_schedule(app.schedules[0], app=app.name))

    def audit(event: CloudEvent) -> None:
        time.sleep(0.01)

    app.http(lambda scope, receive, send: None)
    asgi = cloud_run_app(app, routes={"com.example.*": audit})
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "e1",
        "ce-source": "//example/test",
        "ce-type": "com.example.audit",
        "content-type": "application/json",
    }
    assert call(asgi, "POST", "/_overcast/events", b'{"x": 1}', headers)[0] == 204
    durations = _durations(recorded)
    assert durations["nightly"].count == 1 and durations["nightly"].sum >= 0.01
    assert durations["audit"].count == 1 and durations["audit"].sum >= 0.01


def test_each_kind_records_the_bytes_it_sends_and_reads(recorded: Recorded) -> None:
    unique = uuid.uuid4().hex[:6]
    kv = overcast.open_kv(f"memory://kv-{unique}", name="docs")
    bucket = overcast.open_bucket(f"memory://b-{unique}", name="files")
    cache = overcast.open_cache(f"memory://c-{unique}", name="hot")
    queue = overcast.open_queue(f"memory://q-{unique}", name="jobs")
    topic = overcast.open_topic(f"memory://t-{unique}", name="news")
    kv.sync.put("k", {"name": "Ada"})
    bucket.sync.put("o", b"x" * 5000)
    assert bucket.sync.get("o") == b"x" * 5000
    cache.sync.set("c", "y" * 300)  # stored as JSON: 302 bytes
    assert cache.sync.get("c") == "y" * 300
    assert cache.sync.get("missing") is None  # a miss reads no bytes
    queue.sync.send({"id": 1})
    topic.sync.publish({"id": 2})
    sizes = {
        (p.attributes["resource"], p.attributes["operation"], p.attributes["network.io.direction"]): (p.count, p.sum)
        for p in recorded.points("overcast.upstream.payload.size")
    }
    assert sizes[("docs", "put", "transmit")] == (1, len(b'{"name":"Ada"}'))
    assert sizes[("files", "put", "transmit")] == (1, 5000)
    assert sizes[("files", "get", "receive")] == (1, 5000)
    assert sizes[("hot", "set", "transmit")] == (1, 302)
    assert sizes[("hot", "get", "receive")] == (1, 302)
    assert sizes[("jobs", "send", "transmit")][0] == 1 and sizes[("jobs", "send", "transmit")][1] > 0
    assert sizes[("news", "publish", "transmit")][0] == 1
    assert ("docs", "get", "receive") not in sizes  # a document read is not sized (its JSON is not kept)


def test_the_peak_memory_gauge_is_the_processes(recorded: Recorded) -> None:
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    (point,) = recorded.points("overcast.memory.peak")
    # the peak only grows: read before and after the collection, in bytes (Linux reports KiB)
    assert before <= point.value <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_nothing_is_kept_while_off() -> None:
    assert not telemetry.enabled()
    with runtime.invocation(handler="off"):
        pass
    runtime.counted("off", failed=False, seconds=1.0)
    kv = overcast.open_kv(f"memory://off-{uuid.uuid4().hex[:6]}", name="off")
    kv.sync.put("k", {"v": 1})
    assert not _state.handler_times and not _state.sizes
