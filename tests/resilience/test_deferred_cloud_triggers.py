"""Deferred processing through the routed triggers of Cloud Run and Azure Functions: Eventarc's
CloudEvents (binary and structured mode, the SDK's HTTP binding, google-cloudevents' storage
payload) with the backlog on the Pub/Sub emulator, and Azure's Event Grid trigger, Event Grid
webhook and blob trigger (their worker converters, the Event Grid fixtures) with the backlog on
Azurite. The non-critical subscriber's dependency is a Redis server of this module's, frozen.

Each kind: the platform got its success reply (204; the Functions host sees the function
return: no retry, no poison), then the runtime's own replay schedule (Cloud Scheduler's POST,
the timer trigger) drains the backlog: every event handled exactly once per id, with the data
it was sent with, none lost, none dead-lettered.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import overcast
from overcast.resilience.breaker import breakers
from overcast.runtime.cloudevent import CloudEvent
from overcast.runtime.deferral import subscription_deferral
from resilience.test_deferred import dependency_url, drain_by, freeze, stream_checked
from servers import Server
from servers.redis import start_redis

sys.path.insert(0, str(Path(__file__).parents[1] / "providers" / "azure"))  # azf_support: the worker's converters

LONG = os.environ.get("OVERCAST_LONG", "").strip().lower() in ("1", "true", "yes")
#: events of each kind during the outage (ten times as many with OVERCAST_LONG=1), a few before and after
DURING = 150 if LONG else 15
BEFORE = AFTER = 3
FIXTURES = Path(__file__).parents[1] / "fixtures"
STORAGE_OBJECT = FIXTURES / "gcp/google-cloudevents/examples/binary/storage/StorageObjectData-simple.json"
GRID = FIXTURES / "azure/azure-rest-api-specs/eventgrid/Microsoft.Storage"
FINALIZED = "google.cloud.storage.object.v1.finalized"


@pytest.fixture(scope="module")
def dependency() -> Iterator[Server]:
    """The handler's dependency, one Redis server for the module's tests; frozen and thawed by each."""
    server = start_redis()
    yield server
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Iterator[None]:
    yield
    for breaker in breakers().values():
        breaker.succeeded()


def cloud_app(tmp_path: Path, cloud: str, queues: str, dep: Server, completed: list[CloudEvent]) -> overcast.App:
    """An app on ``cloud`` whose non-critical subscriber ``tag`` (of queue ``uploads``) needs ``dep``."""
    name = f"defer{cloud}{uuid.uuid4().hex[:8]}"
    (tmp_path / "overcast.toml").write_text(
        f'[targets.{cloud}]\ndefaults.queue = "{queues}"\nkv.mail = "{dependency_url(dep)}"\n'
    )
    app = overcast.App(name, config=tmp_path / "overcast.toml")
    uploads, mail = app.queue("uploads"), app.kv("mail")

    @app.subscribe(uploads, critical=False, depends_on=[mail], name="tag")
    async def tag(event: CloudEvent) -> None:
        await mail.put(event.id.replace("/", "-"), {"n": number(event)})
        completed.append(event)

    return app


def number(event: CloudEvent) -> int:
    """The number in the name of the object an event is about: what it was sent with."""
    data = event.data
    name = data.get("name") or data.get("url") or data.get("key")
    return int(str(name).rsplit("img-", 1)[1].split(".")[0])


def outage(
    dep: Server, send: Callable[[range], None], fire: Callable[[], Any], completed: list[CloudEvent]
) -> tuple[range, int]:
    """Events before, during and right after the outage; then the replay fired until drained."""
    during = range(BEFORE, BEFORE + DURING)
    last = during.stop + AFTER
    send(range(BEFORE))
    assert len(completed) == BEFORE
    freeze(dep, True)
    try:
        send(during)
        assert len(completed) == BEFORE, "nothing handled while the dependency is down"
    finally:
        freeze(dep, False)
    send(range(during.stop, last))  # right after: parked while the breaker is open, else handled
    drain_by(fire, completed, last)
    return during, last


def checked(app: overcast.App, completed: list[CloudEvent], ids: Callable[[int], str], span: tuple[range, int]) -> None:
    during, last = span
    backlog = subscription_deferral(app.subscriptions[0], app.name).backlog
    replayed = stream_checked(backlog, completed, [ids(n) for n in range(last)], [ids(n) for n in during])
    assert all(ids(number(e)) == e.id for e in completed), "each event with the data it was sent with"
    model = next(e for e in completed if "replay" not in e.extensions)
    for event in replayed:  # the event the handler would have got at once
        assert (event.type, event.source, event.time is not None) == (model.type, model.source, True)


# -- Cloud Run: Eventarc's CloudEvents ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_eventarc_cloudevents_park_on_a_pubsub_backlog(
    mode: str,
    tmp_path: Path,
    dependency: Server,
    pubsub_emulator: Server,
    firestore_emulator: Server,  # the replayers' leases
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cloudevents.core.bindings.http import to_binary_event, to_structured_event
    from cloudevents.core.v1.event import CloudEvent as SDKCloudEvent

    from asgi_support import call
    from overcast.providers.gcp import cloud_run_app

    monkeypatch.setenv("OVERCAST_TARGET", "gcp")
    monkeypatch.delenv("OVERCAST_GCP_PUSH_AUDIENCE", raising=False)
    monkeypatch.setenv("OVERCAST_EVENTS_VERIFY", "off")  # deliveries posted here carry no token
    completed: list[CloudEvent] = []
    app = cloud_app(tmp_path, "gcp", "pubsub://{app}-{name}", dependency, completed)
    asyncio.run(app.provision())
    asgi = cloud_run_app(app, routes={FINALIZED: "tag"})
    template = json.loads(STORAGE_OBJECT.read_text())
    encode = to_binary_event if mode == "binary" else to_structured_event

    def send(numbers: range) -> None:
        for n in numbers:
            data = {**copy.deepcopy(template), "name": f"uploads/img-{n}.png", "generation": str(1000 + n)}
            attributes = {"id": f"evt-{n}", "source": "//storage.googleapis.com/projects/_/buckets/uploads"}
            attributes.update({"type": FINALIZED, "subject": f"objects/uploads/img-{n}.png"})
            attributes.update(
                {
                    "datacontenttype": "application/json",
                    "time": datetime(2026, 12, 8, tzinfo=UTC) + timedelta(seconds=n),
                }
            )
            message = encode(SDKCloudEvent({"specversion": "1.0", **attributes}, data))
            status, text = call(asgi, "POST", "/_overcast/events", message.body, dict(message.headers))
            assert status == 204, text  # acknowledged: Eventarc does not send it again

    span = outage(dependency, send, lambda: call(asgi, "POST", "/_overcast/schedule/overcast-replay")[0], completed)
    checked(app, completed, lambda n: f"evt-{n}", span)
    assert {e.subject for e in completed} == {f"objects/uploads/img-{n}.png" for n in range(span[1])}
    assert all(e.time == datetime(2026, 12, 8, tzinfo=UTC) + timedelta(seconds=number(e)) for e in completed)


# -- Azure Functions: Event Grid (trigger and webhook) and blob triggers ----------------------


def grid_event(n: int) -> dict[str, Any]:
    """Event Grid's BlobCreated (its own schema) for blob ``img-N.png``."""
    event: dict[str, Any] = json.loads((GRID / "event-grid-schema/blob_created.json").read_text())
    event = dict(event["parameters"]["events"][0]) if "parameters" in event else event
    event.update({"id": f"evt-{n}", "subject": f"/blobServices/default/containers/uploads/blobs/img-{n}.png"})
    event["data"] = {**event["data"], "url": f"https://demo.blob.core.windows.net/uploads/img-{n}.png"}
    return event


def blob(n: int) -> Any:
    from azf_support import input_stream

    properties = {"ContentType": "image/png", "ContentLength": 8, "ETag": f'"0x8D{n:04d}"', "BlobType": "BlockBlob"}
    properties["LastModified"] = "2026-12-08T00:00:00+00:00"
    uri = f"http://127.0.0.1:10000/devstoreaccount1/raw/in/img-{n}.png"
    return input_stream(f"raw/in/img-{n}.png", b"\x89PNG...", uri=uri, properties=properties, metadata={})


@pytest.mark.parametrize("trigger", ["eventgrid", "webhook", "blob"])
def test_azure_event_grid_and_blob_triggers_park_on_an_azurite_backlog(
    trigger: str, tmp_path: Path, dependency: Server, azurite: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azf_support import Context, Worker, event_grid_event, host_response, http_request, timer_request

    from overcast.providers.azure import function_app

    monkeypatch.setenv("OVERCAST_TARGET", "azure")
    monkeypatch.setenv("OVERCAST_EVENTS_VERIFY", "off")  # webhook deliveries posted here carry no key
    completed: list[CloudEvent] = []
    app = cloud_app(tmp_path, "azure", "azqueue://{app}-{name}", dependency, completed)
    worker = Worker(function_app(app, event_grid={"uploads": "tag"}, blobs={"raw/in/{name}": "tag"}))
    [blob_function] = [name for name in worker.functions if name.startswith("blob")]

    def send(numbers: range) -> None:
        for n in numbers:  # each function returns: the host counts no failure, Event Grid retries nothing
            if trigger == "eventgrid":
                assert worker.call("eventgrid_uploads", event_grid_event(grid_event(n)), Context()) is None
            elif trigger == "blob":
                assert worker.call(blob_function, blob(n), Context()) is None
            else:
                url = "https://demo.azurewebsites.net/eventgrid/uploads?code=k"
                body = json.dumps([grid_event(n)]).encode()
                headers = {"content-type": "application/json", "aeg-event-type": "Notification"}
                request = http_request("POST", url, headers=headers, body=body, route_params={"name": "uploads"})
                status = host_response(worker.call("eventgrid", request, Context("eventgrid")))["status"]
                assert status in (200, 204), status

    def ids(n: int) -> str:
        return f"raw/in/img-{n}.png@0x8D{n:04d}" if trigger == "blob" else f"evt-{n}"

    try:
        span = outage(dependency, send, lambda: worker.call("schedule_overcast_replay", timer_request()), completed)
        checked(app, completed, ids, span)
    finally:
        worker.close()
