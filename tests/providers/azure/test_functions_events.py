"""The trigger functions of ``function_app(app)``: Storage Queue messages, Event Grid events
(trigger and webhook, both schemas, the Event Grid fixtures), blobs and timers become
CloudEvents (checked by the ``cloudevents`` SDK) that reach the app's handlers with the
original kept; the validation handshakes are answered; failures reach the host."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from azf_support import (
    Context,
    Worker,
    event_grid_event,
    host_response,
    http_request,
    input_stream,
    make_app,
    queue_message,
    timer_request,
)
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent as SDKCloudEvent

import overcast
from overcast.errors import ConfigError
from overcast.providers.azure import function_app
from overcast.providers.azure.eventgrid import handshake, parse_delivery
from overcast.runtime.cloudevent import CloudEvent
from overcast.runtime.dispatch import QUEUE_MESSAGE, SCHEDULE, TOPIC_MESSAGE

FIXTURES = Path(__file__).parents[2] / "fixtures" / "azure" / "azure-rest-api-specs" / "eventgrid"
STORAGE = sorted((FIXTURES / "Microsoft.Storage").rglob("*.json"))
PUBLISHED = sorted((FIXTURES / "Microsoft.EventGrid").rglob("*.json"))
BASE = "https://demo.azurewebsites.net"


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _events(path: Path) -> list[dict[str, Any]]:
    """A fixture as Event Grid delivers it: an array (real deliveries spell ``specversion``)."""
    data = _load(path)
    events = data["parameters"]["events"] if "parameters" in data else [data]
    out = []
    for event in events:
        event = dict(event)
        if "specVersion" in event:
            event["specversion"] = event.pop("specVersion")
        out.append(event)
    return out


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.fail: set[str] = set()

    def handler(self, name: str) -> Any:
        async def handle(event: CloudEvent) -> None:
            self.events.append((name, event))
            if name in self.fail:
                raise RuntimeError(f"{name} failed")

        handle.__name__ = name
        return handle


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[overcast.App, Recorder, Worker]]:
    monkeypatch.setenv("OVERCAST_TARGET", "azure")
    app = make_app(tmp_path)
    jobs = app.queue("jobs")
    signups = app.topic("signups")
    app.bucket("avatars")
    seen = Recorder()
    app.subscribe(jobs, max_attempts=3)(seen.handler("work"))
    app.subscribe(signups, name="welcome")(seen.handler("welcome"))
    app.subscribe(signups, name="audit", max_attempts=8)(seen.handler("audit"))

    @app.schedule("rate(15 minutes)")
    async def tick(event: CloudEvent) -> None:
        seen.events.append(("tick", event))
        if "tick" in seen.fail:
            raise RuntimeError("tick failed")

    @app.schedule("cron(0 3 ? * MON-FRI 2020)")
    def old() -> None:
        seen.events.append(("old", None))

    fa = function_app(
        app,
        event_grid={"uploads": "welcome", "storage": seen.handler("storage")},
        blobs={"avatars": seen.handler("avatar"), "raw/in/{name}": "work"},
    )
    worker = Worker(fa)
    yield app, seen, worker
    worker.close()


def test_one_function_per_subscription_schedule_and_declared_trigger(setup: Any) -> None:
    _, _, worker = setup
    bindings = {name: json.loads(fn.get_function_json())["bindings"][0] for name, fn in worker.functions.items()}
    assert set(bindings) == {
        "http",
        "queue_jobs",
        "topic_signups_welcome",
        "topic_signups_audit",
        "schedule_tick",
        "schedule_old",
        "eventgrid",
        "eventgrid_uploads",
        "eventgrid_storage",
        "blob_avatars",
        "blob_raw_in",
    } - {"http"}  # no app.http(): no HTTP function
    assert bindings["queue_jobs"] == {
        "direction": "IN",
        "type": "queueTrigger",
        "name": "msg",
        "queueName": "demo-jobs",
        "connection": "AzureWebJobsStorage",
    }
    assert bindings["topic_signups_welcome"]["queueName"].startswith("demo-signups")
    assert bindings["topic_signups_welcome"]["queueName"] != bindings["topic_signups_audit"]["queueName"]
    assert bindings["schedule_tick"]["schedule"] == "0 */15 * * * *"
    assert bindings["schedule_old"]["schedule"] == "0 0 3 * * MON-FRI"
    assert bindings["eventgrid_uploads"]["type"] == "eventGridTrigger"
    assert bindings["eventgrid"]["route"] == "eventgrid/{name}" and bindings["eventgrid"]["authLevel"] == "FUNCTION"
    assert bindings["blob_avatars"]["path"] == "demo-avatars/files/{name}"
    assert bindings["blob_raw_in"]["path"] == "raw/in/{name}"


# -- Storage Queue triggers ---------------------------------------------------------------


def test_a_queue_message_reaches_its_subscription_as_a_cloudevent(setup: Any) -> None:
    _, seen, worker = setup
    msg = queue_message(json.dumps({"id": "u-1", "n": 2}), id="m-7", dequeue_count=2)
    worker.call("queue_jobs", msg, Context("queue_jobs"))
    [(name, event)] = seen.events
    assert name == "work"
    assert event.type == QUEUE_MESSAGE and event.source == "overcast://demo/queue/jobs"
    assert event.id == "m-7" and event.data == {"id": "u-1", "n": 2}
    assert event.extensions["attempts"] == 2
    assert event.original is msg
    event.to_sdk()


def test_a_topic_subscription_message_names_its_subscription(setup: Any) -> None:
    _, seen, worker = setup
    worker.call("topic_signups_audit", queue_message('"hello"', id="m-8"), Context())
    [(name, event)] = seen.events
    assert (name, event.type, event.subject, event.data) == ("audit", TOPIC_MESSAGE, "audit", "hello")
    assert event.source == "overcast://demo/topic/signups"


def test_a_failed_handler_raises_so_the_host_delivers_again(setup: Any) -> None:
    _, seen, worker = setup
    seen.fail.add("welcome")
    with pytest.raises(RuntimeError, match="welcome failed"):
        worker.call("topic_signups_welcome", queue_message("{}", dequeue_count=1), Context())


def test_the_host_retries_up_to_the_largest_max_attempts(setup: Any) -> None:
    _, _, worker = setup
    assert worker.fa.overcast.max_dequeue_count == 8  # audit's limit; work and welcome stop earlier


# -- Event Grid ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", STORAGE + PUBLISHED, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_event_grid_trigger_events_become_cloudevents(setup: Any, path: Path) -> None:
    _, seen, worker = setup
    for raw in _events(path):
        given = event_grid_event(raw)
        worker.call("eventgrid_storage", given, Context())
        name, event = seen.events[-1]
        assert name == "storage" and event.original is given
        CloudEvent.from_sdk(event.to_sdk())  # the SDK validates every attribute
        assert event.id == raw["id"] and event.data == raw["data"]
        if "eventType" in raw:
            assert event.type == raw["eventType"] and event.subject == raw["subject"]
            assert event.source == raw.get("topic", "/azure/eventgrid")
            assert event.time is not None and event.time.year in (2017, 2021)
        else:
            assert (event.type, event.source) == (raw["type"], raw["source"])
            assert event.time is not None


def test_event_grid_trigger_routes_to_a_subscription_by_name(setup: Any) -> None:
    _, seen, worker = setup
    raw = _events(FIXTURES / "Microsoft.Storage/event-grid-schema/blob_created.json")[0]
    worker.call("eventgrid_uploads", event_grid_event(raw), Context())
    assert seen.events[-1][0] == "welcome"
    assert seen.events[-1][1].type == "Microsoft.Storage.BlobCreated"


def _webhook(worker: Worker, method: str, body: bytes, headers: dict[str, str], name: str = "storage") -> Any:
    request = http_request(
        method, f"{BASE}/eventgrid/{name}?code=k", headers=headers, body=body, route_params={"name": name}
    )
    return host_response(worker.call("eventgrid", request, Context("eventgrid")))


def test_webhook_answers_the_event_grid_validation_handshake(setup: Any) -> None:
    _, seen, worker = setup
    validation = [
        {
            "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
            "topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
            "subject": "",
            "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6", "validationUrl": "https://x/y"},
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "eventTime": "2018-01-25T22:12:19.4556811Z",
            "metadataVersion": "1",
            "dataVersion": "1",
        }
    ]
    out = _webhook(
        worker,
        "POST",
        json.dumps(validation).encode(),
        {"content-type": "application/json", "aeg-event-type": "SubscriptionValidation"},
    )
    assert out["status"] == 200
    assert json.loads(out["body"]) == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    assert seen.events == []


def test_webhook_answers_the_cloudevents_options_handshake(setup: Any) -> None:
    _, _, worker = setup
    out = _webhook(
        worker, "OPTIONS", b"", {"webhook-request-origin": "eventgrid.azure.net", "webhook-request-rate": "120"}
    )
    assert out["status"] == 200
    assert out["headers"]["webhook-allowed-origin"] == "eventgrid.azure.net"
    assert out["headers"]["webhook-allowed-rate"] == "*"
    assert _webhook(worker, "OPTIONS", b"", {})["status"] == 400


@pytest.mark.parametrize("path", STORAGE + PUBLISHED, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_webhook_delivers_every_event_of_an_array(setup: Any, path: Path) -> None:
    _, seen, worker = setup
    events = _events(path) * 2
    cloud = "specversion" in events[0]
    content_type = "application/cloudevents-batch+json" if cloud else "application/json"
    out = _webhook(
        worker, "POST", json.dumps(events).encode(), {"content-type": content_type, "aeg-event-type": "Notification"}
    )
    assert out["status"] == 200
    assert [e.id for _, e in seen.events] == [e["id"] for e in events]
    assert all(e.original == raw for (_, e), raw in zip(seen.events, events, strict=True))


def test_webhook_takes_structured_and_binary_cloudevents(setup: Any) -> None:
    _, seen, worker = setup
    raw = _events(FIXTURES / "Microsoft.Storage/cloud-events-schema/blob_created.json")[0]
    raw["time"] = datetime.fromisoformat(raw["time"][:26] + "+00:00")
    sdk = SDKCloudEvent(
        {k: v for k, v in raw.items() if k != "data"} | {"datacontenttype": "application/json"}, raw["data"]
    )
    for message in (to_structured_event(sdk), to_binary_event(sdk)):
        headers = {k.lower(): v for k, v in message.headers.items()}
        assert _webhook(worker, "POST", message.body, headers)["status"] == 200
    assert [(e.type, e.data) for _, e in seen.events] == [(raw["type"], raw["data"])] * 2


def test_webhook_failures(setup: Any) -> None:
    _, seen, worker = setup
    body = json.dumps(_events(FIXTURES / "Microsoft.Storage/event-grid-schema/blob_deleted.json")).encode()
    assert _webhook(worker, "POST", body, {"content-type": "application/json"}, name="nobody")["status"] == 404
    assert _webhook(worker, "POST", b"not json", {"content-type": "application/json"})["status"] == 400
    assert _webhook(worker, "POST", b'[{"id": "1"}]', {"content-type": "application/json"})["status"] == 400
    seen.fail.add("storage")
    assert _webhook(worker, "POST", body, {"content-type": "application/json"})["status"] == 500  # Event Grid retries


def test_handshake_ignores_ordinary_deliveries() -> None:
    body = json.dumps(_events(FIXTURES / "Microsoft.Storage/event-grid-schema/blob_created.json")).encode()
    assert handshake("POST", {"aeg-event-type": "Notification"}, body) is None
    events = parse_delivery({"content-type": "application/json"}, body)
    assert [e.type for e in events] == ["Microsoft.Storage.BlobCreated"]


# -- blobs ---------------------------------------------------------------------------------


def test_a_blob_trigger_becomes_a_blob_created_cloudevent_with_the_stream(setup: Any) -> None:
    _, seen, worker = setup
    blob = input_stream(
        "demo-avatars/files/u-1.png",
        b"\x89PNG...",
        uri="http://127.0.0.1:10000/devstoreaccount1/demo-avatars/files/u-1.png",
        properties={
            "ContentType": "image/png",
            "ContentLength": 8,
            "ETag": '"0x8D9"',
            "BlobType": "BlockBlob",
            "LastModified": "2026-11-22T20:00:00+00:00",
        },
        metadata={"owner": "u-1"},
    )
    worker.call("blob_avatars", blob, Context())
    [(name, event)] = seen.events
    assert name == "avatar" and event.original is blob
    assert event.type == "Microsoft.Storage.BlobCreated"
    assert event.subject == "/blobServices/default/containers/demo-avatars/blobs/files/u-1.png"
    assert event.source == "http://127.0.0.1:10000/devstoreaccount1/demo-avatars"
    assert event.id == "demo-avatars/files/u-1.png@0x8D9"
    assert event.data["contentType"] == "image/png" and event.data["contentLength"] == 8
    assert event.data["metadata"] == {"owner": "u-1"} and event.data["eTag"] == "0x8D9"
    assert event.original.read() == b"\x89PNG..."
    assert event.data["key"] == "u-1.png"  # the bucket's key, under its files/ prefix
    CloudEvent.from_sdk(event.to_sdk())


def test_a_route_to_a_schedule_without_arguments_calls_it_bare(setup: Any) -> None:
    app, seen, _ = setup
    worker = Worker(function_app(app, event_grid={"nightly": "old"}))
    try:
        raw = _events(FIXTURES / "Microsoft.Storage/event-grid-schema/blob_created.json")[0]
        worker.call("eventgrid_nightly", event_grid_event(raw), Context())
    finally:
        worker.close()
    assert seen.events == [("old", None)]


def test_blob_routes_must_name_a_bucket_or_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERCAST_TARGET", "azure")
    app = make_app(tmp_path)
    with pytest.raises(ConfigError, match="neither a bucket"):
        function_app(app, blobs={"nothing": lambda e: None})
    with pytest.raises(ConfigError, match="names no subscription or schedule"):
        function_app(app, event_grid={"x": "missing"})


# -- timers --------------------------------------------------------------------------------


def test_a_timer_fires_its_schedule(setup: Any) -> None:
    _, seen, worker = setup
    worker.call("schedule_tick", timer_request())
    [(name, event)] = seen.events
    assert name == "tick" and event.type == SCHEDULE and event.data["schedule"] == "rate(15 minutes)"
    seen.fail.add("tick")
    with pytest.raises(RuntimeError, match="tick failed"):
        worker.call("schedule_tick", timer_request(past_due=True))


def test_a_timer_outside_the_schedule_years_does_nothing(setup: Any) -> None:
    _, seen, worker = setup
    worker.call("schedule_old", timer_request())
    assert seen.events == []


def test_a_url_naming_its_connection_setting_names_the_trigger_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OVERCAST_TARGET", "azure")
    monkeypatch.setenv("OVERCAST_QUEUE_JOBS", "azqueue://jobs?connection_env=ORDERS_STORAGE")
    monkeypatch.setenv("OVERCAST_BUCKET_AVATARS", "azblob://pics?connection_env=PICS_STORAGE")
    app = make_app(tmp_path)
    app.subscribe(app.queue("jobs"), name="worker")(lambda e: None)
    app.bucket("avatars")
    fa = function_app(app, blobs={"avatars": "worker"}, connection="MainStorage")
    bindings = {f.get_function_name(): json.loads(f.get_function_json())["bindings"][0] for f in fa.get_functions()}
    assert bindings["queue_jobs"]["connection"] == "ORDERS_STORAGE"
    assert (bindings["blob_avatars"]["path"], bindings["blob_avatars"]["connection"]) == ("pics/{name}", "PICS_STORAGE")


def test_subscriptions_off_storage_queues_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERCAST_TARGET", "azure")
    monkeypatch.setenv("OVERCAST_QUEUE_JOBS", "redis://localhost/jobs")
    app = make_app(tmp_path)
    app.subscribe(app.queue("jobs"), name="worker")(lambda e: None)
    with pytest.raises(ConfigError, match="azqueue://"):
        function_app(app)


def test_the_event_grid_original_is_not_shared(setup: Any) -> None:
    raw = _events(FIXTURES / "Microsoft.Storage/event-grid-schema/blob_created.json")
    before = copy.deepcopy(raw)
    parse_delivery({"content-type": "application/json"}, json.dumps(raw).encode())
    assert raw == before


def test_a_bucket_declared_with_app_on_gets_its_blob_trigger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERCAST_TARGET", "azure")
    app = make_app(tmp_path)
    avatars = app.bucket("avatars")
    seen = Recorder()
    app.on(avatars, name="avatar")(seen.handler("avatar"))
    worker = Worker(function_app(app))
    try:
        bindings = {name: json.loads(fn.get_function_json())["bindings"][0] for name, fn in worker.functions.items()}
        assert bindings["blob_avatars"]["path"] == "demo-avatars/files/{name}"
    finally:
        worker.close()


def test_what_a_blob_trigger_cannot_express_is_an_event_grid_subscription_named_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deletions, a prefix and outside sources declared with @app.on need no event_grid=:
    each is the Event Grid trigger of its name, and takes only the blob events it declared."""
    monkeypatch.setenv("OVERCAST_TARGET", "azure")
    app = make_app(tmp_path)
    avatars = app.bucket("avatars")
    seen = Recorder()
    app.on(avatars, events=("deleted",), name="gone")(seen.handler("gone"))
    app.on(avatars, events=("created", "deleted"), prefix="big/", name="big")(seen.handler("big"))
    app.on("Microsoft.Resources.*", name="resources")(seen.handler("resources"))
    worker = Worker(function_app(app))
    try:
        assert {"eventgrid_gone", "eventgrid_big", "eventgrid_resources"} <= set(worker.functions)
        assert not [name for name in worker.functions if name.startswith("blob_")]
        raw = _events(FIXTURES / "Microsoft.Storage/event-grid-schema/blob_deleted.json")[0]
        container = "/blobServices/default/containers/demo-avatars/blobs/files/"
        for subject in ("big/a.png", "small/a.png"):
            event = {**raw, "subject": container + subject}
            worker.call("eventgrid_gone", event_grid_event(event), Context())
            worker.call("eventgrid_big", event_grid_event(event), Context())
        created = _events(FIXTURES / "Microsoft.Storage/event-grid-schema/blob_created.json")[0]
        worker.call("eventgrid_gone", event_grid_event({**created, "subject": container + "a.png"}), Context())
        other = {**raw, "subject": "/blobServices/default/containers/elsewhere/blobs/files/big/a.png"}
        worker.call("eventgrid_big", event_grid_event(other), Context())
        worker.call("eventgrid_resources", event_grid_event(created), Context())
    finally:
        worker.close()
    assert [(name, event.subject.rsplit("/blobs/", 1)[-1]) for name, event in seen.events] == [
        ("gone", "files/big/a.png"),
        ("big", "files/big/a.png"),
        ("gone", "files/small/a.png"),
        ("resources", created["subject"].rsplit("/blobs/", 1)[-1]),
    ]
