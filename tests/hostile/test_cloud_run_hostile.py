"""Hostile deliveries into ``cloud_run_app``: Pub/Sub pushes (a foreign subscription's, the
app's own queue and topic, a Cloud Storage notification), Eventarc CloudEvents in binary
and structured mode, legacy background events and Cloud Scheduler's POST, each taken
from the recorded fixtures and mutated as a whole request: path, headers (content type,
``ce-*``) and body (dropped fields, nulls, odd strings, text that is not JSON or base64).

The rule: every request gets one HTTP reply; 2xx when delivered, 400 for a body that is
not the event it claims to be, 404 for an event nothing takes (naming it), never a 500
while no handler failed, never a traceback; a handler that raises is a 500 without one.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hostile_support import FIXTURES, HOSTILE, fixtures_under, has_traceback, load, mutated, note
from hypothesis import given

import overcast
from overcast.providers.gcp import cloud_run_app
from overcast.runtime.cloudevent import CloudEvent

# a failing example holding a 300 KB value is printed whole: hypothesis warns, and warnings are errors here
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

GCP = FIXTURES / "gcp"
CONFORMANCE = GCP / "functions-framework-conformance" / "data"
GCE = GCP / "google-cloudevents" / "examples"

CONFIG = """\
[app]
[targets.gcp]
queue.jobs = "memory://jobs"
topic.signups = "memory://signups"
"""

#: the CloudEvent type of each binary example's folder (as test_cloud_run_events.py)
TYPES = {
    "pubsub": "google.cloud.pubsub.topic.v1.messagePublished",
    "storage": "google.cloud.storage.object.v1.finalized",
    "firestore": "google.cloud.firestore.document.v1.written",
    "cloudbuild": "google.cloud.cloudbuild.build.v1.statusChanged",
    "audit": "google.cloud.audit.log.v1.written",
    "scheduler": "google.cloud.scheduler.job.v1.executed",
}


def _b64(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def _push(body: Any, subscription: str, **extra: Any) -> dict[str, Any]:
    message = {"data": _b64(body), "messageId": "m-1", "publishTime": "2026-01-02T03:04:05.678Z", **extra}
    return {"message": message, "subscription": subscription, "deliveryAttempt": 1}


def _storage_notification() -> dict[str, Any]:
    obj = load(fixtures_under("gcp/google-cloudevents/testdata/google/events/cloud/storage")[0])
    envelope = _push(obj, "projects/demo/subscriptions/uploads")
    envelope["message"]["attributes"] = {
        "eventType": "OBJECT_FINALIZE",
        "bucketId": "uploads",
        "objectId": "a/b.txt",
        "payloadFormat": "JSON_API_V1",
        "objectGeneration": "1",
    }
    return envelope


def _requests() -> list[dict[str, Any]]:
    """Every delivery the runtime takes, as ``{path, headers, body}`` (body: JSON, or raw text)."""
    json_type = {"content-type": "application/json"}
    out: list[dict[str, Any]] = []
    for path in sorted((GCE / "binary" / "pubsub").glob("*.json")):
        out.append({"path": "/_overcast/pubsub", "headers": json_type, "body": load(path)})
    out += [
        {
            "path": "/_overcast/pubsub",
            "headers": json_type,
            "body": _push({"n": 1}, "projects/demo/subscriptions/jobs"),
        },
        {
            "path": "/_overcast/pubsub",
            "headers": json_type,
            "body": _push({"n": 2}, "projects/demo/subscriptions/signups-welcome", attributes={"k": "v"}),
        },
        {
            "path": "/_overcast/pubsub/jobs",
            "headers": json_type,
            "body": _push("text", "projects/demo/subscriptions/x"),
        },
        {"path": "/_overcast/pubsub", "headers": json_type, "body": _storage_notification()},
        {"path": "/_overcast/schedule/tick", "headers": {}, "body": ""},
    ]
    for path in sorted(CONFORMANCE.glob("*-legacy-input.json")):
        out.append({"path": "/_overcast/events", "headers": json_type, "body": load(path)})
    structured = {"content-type": "application/cloudevents+json; charset=utf-8"}
    for path in sorted(CONFORMANCE.glob("*-cloudevent-input.json")) + sorted((GCE / "structured").rglob("*.json")):
        out.append({"path": "/_overcast/events", "headers": structured, "body": load(path)})
    for path in sorted((GCE / "binary").rglob("*.json")):
        headers = {
            "ce-specversion": "1.0",
            "ce-id": "evt-1",
            "ce-source": f"//example.googleapis.com/{path.stem}",
            "ce-type": TYPES[path.parent.name],
            "ce-time": "2021-02-05T04:06:14.109Z",
            "content-type": "application/json",
        }
        out.append({"path": "/_overcast/events", "headers": headers, "body": load(path)})
    return out


REQUESTS = _requests()


class Recorder:
    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        self.fail = False

    async def __call__(self, event: CloudEvent) -> None:
        self.events.append(event)
        if self.fail:
            raise RuntimeError("the handler's own error")


def _runtime(folder: Path, seen: Recorder) -> Any:
    (folder / "overcast.toml").write_text(CONFIG)
    app = overcast.App("demo", config=folder / "overcast.toml")
    app.subscribe(app.queue("jobs"), name="work")(seen)
    app.subscribe(app.topic("signups"), name="welcome")(seen)
    app.schedule("rate(1 hour)", name="tick")(seen)

    async def api(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"app"})

    app.http(api)
    return cloud_run_app(app, routes={"google.*": seen})


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Any:
    mp = pytest.MonkeyPatch()
    mp.setenv("OVERCAST_TARGET", "gcp")
    mp.delenv("OVERCAST_GCP_PUSH_AUDIENCE", raising=False)
    mp.setenv("OVERCAST_EVENTS_VERIFY", "off")  # hostile envelopes, not hostile senders (see test_event_auth)
    seen = Recorder()
    yield _runtime(tmp_path_factory.mktemp("cloud-run"), seen), seen
    mp.undo()


def _wire(request: dict[str, Any]) -> tuple[str, list[tuple[bytes, bytes]], bytes]:
    """A mutated request as bytes on the wire: null headers left out, other values as their JSON text."""
    path = request.get("path")
    path = path if isinstance(path, str) else json.dumps(path)
    headers = []
    given = request.get("headers")
    for name, value in given.items() if isinstance(given, dict) else ():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        headers.append((name.lower().encode(), text.encode("utf-8", "surrogatepass")))
    body = request.get("body")
    raw = body if isinstance(body, str) else json.dumps(body)
    return path, headers, raw.encode("utf-8", "surrogatepass")


def call(asgi: Any, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, bytes, int]:
    """One POST through ``asgi`` in-process: (status, body, how many responses were started)."""
    started: list[int] = []
    chunks: list[bytes] = []

    async def run() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "https",
            "path": path,
            "raw_path": path.encode("utf-8", "surrogatepass"),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("run.example", 443),
        }
        done = False

        async def receive() -> dict[str, Any]:
            nonlocal done
            if done:
                await asyncio.sleep(3600)
            done = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.append(message["status"])
            else:
                chunks.append(message.get("body", b""))

        await asgi(scope, receive, send)

    asyncio.run(run())
    return (started[0] if started else 0), b"".join(chunks), len(started)


@HOSTILE
@given(mutated(REQUESTS))
def test_every_delivery_gets_one_reply_and_no_500_while_handlers_succeed(runtime: Any, case: Any) -> None:
    asgi, _ = runtime
    request, _ = case
    status, body, starts = call(asgi, *_wire(request))
    assert starts == 1
    assert status in (200, 204, 400, 404, 405, 413), (status, body[:300])
    assert not has_traceback(body)
    note(f"status {status}")


def test_the_originals_are_delivered(runtime: Any) -> None:
    """The unmutated requests all reach a handler: the mutations start from valid deliveries."""
    asgi, seen = runtime
    for request in REQUESTS:
        before = len(seen.events)
        status, body, _ = call(asgi, *_wire(request))
        assert status == 204, (request["path"], body)
        assert len(seen.events) == before + 1


def test_a_failing_handler_is_a_500_without_a_traceback(runtime: Any) -> None:
    asgi, seen = runtime
    seen.fail = True
    try:
        for request in REQUESTS:
            status, body, _ = call(asgi, *_wire(request))
            assert status == 500 and not has_traceback(body), body
    finally:
        seen.fail = False


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{not json", {"content-type": "application/json"}),
        (b"\xff\xfe\x00", {"content-type": "application/json"}),
        (b"[]", {"content-type": "application/json"}),
        (b"{}", {"content-type": "application/cloudevents+json"}),
        (b"{}", {"ce-specversion": "1.0"}),
        (json.dumps({"message": {"data": "not base64!!", "messageId": "m"}, "subscription": "s"}).encode(), {}),
    ],
    ids=["not-json", "not-utf8", "array", "structured-empty", "binary-no-attributes", "bad-base64"],
)
def test_a_body_that_is_not_an_event_is_a_400(runtime: Any, body: bytes, headers: dict[str, str]) -> None:
    asgi, _ = runtime
    wire = [(k.encode(), v.encode()) for k, v in headers.items()]
    status, text, _ = call(asgi, "/_overcast/pubsub/jobs", wire, body)
    assert status == 400, text
