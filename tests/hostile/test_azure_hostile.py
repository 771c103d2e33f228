"""Hostile input into ``function_app``, through azure-functions' own types as the worker
builds them: HTTP requests (the recorded API Gateway requests' method, path, query,
headers and body, mutated), Storage Queue messages (as the ``azqueue://`` provider writes
them, mutated), Event Grid trigger events and webhook deliveries (the recorded Event
Grid and CloudEvents schema events, mutated; the validation handshakes too), blob
triggers and timers.

The rules: an HTTP request (the app's, the webhook's) always gets an HTTP response, 400
for a delivery that is not one, never a 500 while no handler failed, never a traceback;
a queue message is delivered (its body as it can be read) rather than failing; any
other trigger is delivered or fails with an Overcast error naming the event.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import azure.functions as func
import pytest
from azf_support import Context, Worker, event_grid_event, host_response, input_stream, make_app, queue_message
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from hostile_support import FIXTURES, HOSTILE, has_traceback, load, mutated, note
from hypothesis import assume, given

from overcast.errors import OvercastError
from overcast.providers.aws.lambda_http import adapter_for
from overcast.providers.azure import function_app
from overcast.providers.azure.queues import encode_message
from overcast.runtime.cloudevent import CloudEvent

# a failing example holding a 300 KB value is printed whole: hypothesis warns, and warnings are errors here
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

EVENTGRID = FIXTURES / "azure" / "azure-rest-api-specs" / "eventgrid"
BASE = "https://demo.azurewebsites.net"


def _grid_events() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(EVENTGRID.rglob("*.json")):
        given = load(path)
        events = given["parameters"]["events"] if "parameters" in given else given
        out += events if isinstance(events, list) else [events]
    return out


GRID_EVENTS = _grid_events()
VALIDATION = {
    "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
    "topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
    "subject": "",
    "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6", "validationUrl": "https://x/y"},
    "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
    "eventTime": "2018-01-25T22:12:19.4556811Z",
    "metadataVersion": "1",
    "dataVersion": "1",
}


def _http_requests() -> list[dict[str, Any]]:
    """The recorded API Gateway REST requests as what any HTTP client sends: method, path, query, headers, body."""
    out = []
    for path in sorted((FIXTURES / "aws").rglob("*.json")):
        event = load(path)
        adapter = adapter_for(event)
        if adapter is None or adapter.name != "apigateway-rest":
            continue
        out.append(
            {
                "method": event["httpMethod"],
                "path": event.get("path") or "/",
                "query": event.get("queryStringParameters") or {},
                "headers": event.get("headers") or {},
                "body": event.get("body") or "",
            }
        )
    return out


HTTP_REQUESTS = _http_requests()


def _webhook_requests() -> list[dict[str, Any]]:
    json_type = {"content-type": "application/json", "aeg-event-type": "Notification"}
    out: list[dict[str, Any]] = [
        {"method": "POST", "headers": json_type, "body": [event]} for event in GRID_EVENTS if "eventType" in event
    ]
    batch = {"content-type": "application/cloudevents-batch+json"}
    out += [{"method": "POST", "headers": batch, "body": [e]} for e in GRID_EVENTS if "specversion" in e]
    structured = {"content-type": "application/cloudevents+json"}
    out += [{"method": "POST", "headers": structured, "body": e} for e in GRID_EVENTS if "specversion" in e]
    validation = {"content-type": "application/json", "aeg-event-type": "SubscriptionValidation"}
    out.append({"method": "POST", "headers": validation, "body": [VALIDATION]})
    out.append({"method": "OPTIONS", "headers": {"webhook-request-origin": "eventgrid.azure.net"}, "body": ""})
    return out


WEBHOOK_REQUESTS = _webhook_requests()


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def __call__(self, event: CloudEvent) -> None:
        self.events.append(event)


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Any:
    mp = pytest.MonkeyPatch()
    mp.setenv("OVERCAST_TARGET", "azure")
    app = make_app(tmp_path_factory.mktemp("azure"))
    seen = Recorder()
    app.subscribe(app.queue("jobs"), name="work")(seen)
    app.schedule("rate(1 hour)", name="tick")(seen)
    api = FastAPI()

    @api.api_route("/boom", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
    async def boom() -> None:
        raise RuntimeError("the app's own bug")

    @api.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
    async def echo(path: str, request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"path": path, "url": str(request.url), "headers": dict(request.headers), "n": len(body)})

    app.http(api)
    running = Worker(function_app(app, event_grid={"storage": seen}, blobs={"uploads/{name}": seen}))
    yield running, seen
    running.close()
    mp.undo()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _request(request: dict[str, Any], url: str, route_params: dict[str, str] | None = None) -> func.HttpRequest:
    """A mutated request as the Functions host hands it over: strings everywhere, null headers absent."""
    given = request.get("headers")
    headers = {k: _text(v) for k, v in (given.items() if isinstance(given, dict) else ()) if v is not None}
    body = request.get("body")
    raw = body if isinstance(body, str) else json.dumps(body)
    return func.HttpRequest(
        method=_text(request.get("method") or "GET"),
        url=url,
        headers=headers,
        route_params=route_params or {},
        body=raw.encode("utf-8", "surrogatepass"),
    )


@HOSTILE
@given(mutated(HTTP_REQUESTS))
def test_an_http_request_always_gets_an_http_response(worker: Any, case: Any) -> None:
    running, _ = worker
    request, _ = case
    query = request.get("query")
    pairs = query.items() if isinstance(query, dict) else ()
    path = _text(request.get("path"))
    qs = "&".join(f"{quote(_text(k), safe='')}={_text(v)}" for k, v in pairs)
    url = f"{BASE}{path if path.startswith('/') else '/' + path}" + (f"?{qs}" if qs else "")
    reply = host_response(running.call("http", _request(request, url), Context()))
    status = reply["status"]
    assert 100 <= status <= 599
    assert not has_traceback(reply["body"])
    assert status != 500 or "boom" in url, reply["body"][:300]
    note(f"status {status}")


@HOSTILE
@given(mutated(WEBHOOK_REQUESTS))
def test_a_webhook_delivery_always_gets_an_http_response(worker: Any, case: Any) -> None:
    running, _ = worker
    request, _ = case
    url = f"{BASE}/eventgrid/storage?code=k"
    reply = host_response(running.call("eventgrid", _request(request, url, {"name": "storage"}), Context("eventgrid")))
    assert reply["status"] in (200, 400), reply
    assert not has_traceback(reply["body"])
    note(f"status {reply['status']}")


def test_the_webhook_originals_are_answered_200(worker: Any) -> None:
    running, seen = worker
    for request in WEBHOOK_REQUESTS:
        before = len(seen.events)
        url = f"{BASE}/eventgrid/storage?code=k"
        reply = host_response(running.call("eventgrid", _request(request, url, {"name": "storage"}), Context()))
        assert reply["status"] == 200, (request, reply)
        handshake = request["method"] == "OPTIONS" or request["body"] == [VALIDATION]
        assert len(seen.events) == before + (0 if handshake else 1)


@HOSTILE
@given(mutated(GRID_EVENTS))
def test_an_event_grid_trigger_event_is_delivered_or_a_clear_error(worker: Any, case: Any) -> None:
    running, _ = worker
    event, _ = case
    try:  # the worker builds func.EventGridEvent first: what it refuses never reaches the app
        given = event_grid_event(event)
    except Exception:
        assume(False)
    try:
        running.call("eventgrid_storage", given, Context())
    except OvercastError as exc:
        note(type(exc).__name__)
        return
    note("delivered")


QUEUE_ORIGINALS = [
    {"id": "m-1", "a": {"origin": "web"}, "body": {"n": 1}, "dequeue": 1, "encoded": True},
    {"id": "m-2", "a": {}, "body": "plain text", "dequeue": 2, "encoded": True},
    {"id": "m-3", "a": {}, "body": {"n": 3}, "dequeue": 1, "encoded": False},
]


@HOSTILE
@given(mutated(QUEUE_ORIGINALS))
def test_a_queue_message_is_delivered_whatever_its_text(worker: Any, case: Any) -> None:
    running, seen = worker
    message, _ = case
    body = message.get("body")
    data = (body if isinstance(body, str) else json.dumps(body)).encode("utf-8", "surrogatepass")
    if message.get("encoded") is True:
        attributes = message.get("a")
        header = json.dumps({"id": message.get("id"), "a": attributes})
        text = header + "\n" + data.decode("utf-8", "surrogatepass")
    else:
        text = data.decode("utf-8", "surrogatepass")
    dequeue = message.get("dequeue")
    count = dequeue if type(dequeue) is int and 0 < dequeue < 2**31 else 1  # the host's count is a number
    before = len(seen.events)
    running.call("queue_jobs", queue_message(text.encode("utf-8", "surrogatepass"), dequeue_count=count), Context())
    assert len(seen.events) == before + 1
    delivered = seen.events[-1]
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in delivered.extensions.items() if k != "attempts")


def test_the_provider_writes_what_the_strategy_starts_from() -> None:
    text = encode_message("m-1", json.dumps({"n": 1}).encode(), {"origin": "web"})
    assert text == json.dumps({"id": "m-1", "a": {"origin": "web"}}, separators=(",", ":")) + "\n" + '{"n": 1}'


BLOB_ORIGINAL = {
    "name": "uploads/files/u-1.png",
    "uri": "http://127.0.0.1:10000/devstoreaccount1/uploads/files/u-1.png",
    "properties": {
        "ContentType": "image/png",
        "ContentLength": 8,
        "ETag": '"0x8D9"',
        "BlobType": "BlockBlob",
        "LastModified": "2026-11-22T20:00:00+00:00",
    },
    "metadata": {"owner": "u-1"},
}


@HOSTILE
@given(mutated([BLOB_ORIGINAL]))
def test_a_blob_trigger_is_delivered_or_a_clear_error(worker: Any, case: Any) -> None:
    running, _ = worker
    blob, _ = case
    try:  # the worker's converter first: what it refuses never reaches the app
        stream = input_stream(
            _text(blob.get("name")),
            b"\x89PNG...",
            uri=_text(blob.get("uri")),
            properties=blob.get("properties"),  # type: ignore[arg-type]
            metadata=blob.get("metadata"),  # type: ignore[arg-type]
        )
    except Exception:
        assume(False)
    try:
        running.call("blob_uploads", stream, Context())
    except OvercastError as exc:
        note(type(exc).__name__)
        return
    note("delivered")


@pytest.mark.parametrize("past_due", [True, False])
def test_a_timer_fires_its_schedule(worker: Any, past_due: bool) -> None:
    from azf_support import timer_request

    running, seen = worker
    before = len(seen.events)
    running.call("schedule_tick", timer_request(past_due))
    assert len(seen.events) == before + 1


@pytest.mark.parametrize("body", [b"", b"null", b"[]", b"[null]", b"{", b"\xff", b'[{"specversion": "1.0"}]'])
def test_a_webhook_body_that_is_no_delivery_is_a_400(worker: Any, body: bytes) -> None:
    running, _ = worker
    request = func.HttpRequest(
        method="POST",
        url=f"{BASE}/eventgrid/storage",
        headers={"content-type": "application/json"},
        route_params={"name": "storage"},
        body=body,
    )
    assert host_response(running.call("eventgrid", request, Context()))["status"] == 400


def test_the_strategies_start_from_recorded_events() -> None:
    assert any("specversion" in e for e in GRID_EVENTS) and any("eventType" in e for e in GRID_EVENTS)
    assert HTTP_REQUESTS and len(WEBHOOK_REQUESTS) > 4
