"""Every Google event fixture through ``cloud_run_app``: the functions-framework conformance
inputs (legacy background events and CloudEvents) produce their expected CloudEvents on
id, source, subject, type, time, datacontenttype and data; the google-cloudevents examples
arrive in binary and structured mode, and as Pub/Sub pushes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cloud_run_support import Recorder, call, make_app, post_json
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent as SDKCloudEvent

from overcast.providers.gcp import cloud_run_app
from overcast.providers.gcp.events import BadEvent, legacy_event
from overcast.runtime.cloudevent import CloudEvent

FIXTURES = Path(__file__).parents[2] / "fixtures" / "gcp"
CONFORMANCE = FIXTURES / "functions-framework-conformance" / "data"
LEGACY_INPUTS = sorted(CONFORMANCE.glob("*-legacy-input.json"))
CE_INPUTS = sorted(CONFORMANCE.glob("*-cloudevent-input.json"))
GCE = FIXTURES / "google-cloudevents"
BINARY = sorted((GCE / "examples" / "binary").rglob("*.json"))
STRUCTURED = sorted((GCE / "examples" / "structured").rglob("*.json"))
TESTDATA = sorted((GCE / "testdata").rglob("*.json"))

#: the CloudEvent type of each google-cloudevents folder (from the project's catalog)
TYPES = {
    "pubsub": "google.cloud.pubsub.topic.v1.messagePublished",
    "storage": "google.cloud.storage.object.v1.finalized",
    "firestore": "google.cloud.firestore.document.v1.written",
    "cloudbuild": "google.cloud.cloudbuild.build.v1.statusChanged",
    "audit": "google.cloud.audit.log.v1.written",
    "scheduler": "google.cloud.scheduler.job.v1.executed",
    "database": "google.firebase.database.ref.v1.written",
    "firebasealerts": "google.firebase.firebasealerts.alerts.v1.published",
    "testlab": "google.firebase.testlab.testMatrix.v1.completed",
    "auth": "google.firebase.auth.user.v1.created",
    "remoteconfig": "google.firebase.remoteconfig.remoteConfig.v1.updated",
    "analytics": "google.firebase.analytics.log.v1.written",
}

ATTRIBUTES = ("id", "source", "subject", "type", "datacontenttype", "dataschema")


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Recorder]]:
    monkeypatch.setenv("OVERCAST_TARGET", "gcp")
    monkeypatch.delenv("OVERCAST_GCP_PUSH_AUDIENCE", raising=False)
    monkeypatch.setenv("OVERCAST_EVENTS_VERIFY", "off")  # deliveries posted here carry no token
    seen = Recorder()
    app = make_app(tmp_path, seen)
    yield cloud_run_app(app, routes={"google.*": seen.handler("google")}), seen


def _check(event: CloudEvent, expected: dict[str, Any], *, extra_data: tuple[str, ...] = ()) -> None:
    for name in ATTRIBUTES:
        assert getattr(event, name) == expected.get(name), name
    assert event.specversion == "1.0"
    assert event.time == datetime.fromisoformat(expected["time"].replace("Z", "+00:00"))
    data = dict(event.data) if isinstance(event.data, dict) else event.data
    for key in extra_data:
        data.pop(key, None)
    assert data == expected["data"]
    # the SDK accepts what we produce
    event.to_sdk()


@pytest.mark.parametrize("path", LEGACY_INPUTS, ids=lambda p: p.name.removesuffix("-legacy-input.json"))
def test_legacy_event_matches_conformance_output(runtime: Any, path: Path) -> None:
    asgi, seen = runtime
    status, text = post_json(asgi, "/_overcast/events", _load(path))
    assert status == 204, text
    ((name, event),) = seen.events
    assert name == "google"
    expected = _load(path.with_name(path.name.replace("legacy-input", "cloudevent-output")))
    _check(event, expected)
    assert event.original == _load(path)


@pytest.mark.parametrize("mode", ["binary", "structured"])
@pytest.mark.parametrize("path", CE_INPUTS, ids=lambda p: p.name.removesuffix("-cloudevent-input.json"))
def test_cloudevent_input_matches_conformance_output(runtime: Any, path: Path, mode: str) -> None:
    asgi, seen = runtime
    given = _load(path)
    attributes = {k: v for k, v in given.items() if k != "data"}
    attributes["time"] = datetime.fromisoformat(attributes["time"].replace("Z", "+00:00"))
    sdk = SDKCloudEvent(attributes, given["data"])
    message = to_binary_event(sdk) if mode == "binary" else to_structured_event(sdk)
    status, text = call(asgi, "POST", "/_overcast/events", message.body, dict(message.headers))
    assert status == 204, text
    ((_, event),) = seen.events
    expected = _load(path.with_name(path.name.replace("input", "output")))
    # The Pub/Sub inputs carry data.subscription, which the expected outputs (written for
    # legacy inputs too, where no subscription exists) leave out; we keep what was sent.
    _check(event, expected, extra_data=("subscription",))
    if "subscription" in given["data"]:
        assert event.data["subscription"] == given["data"]["subscription"]


def test_every_legacy_input_has_its_expected_cloudevent() -> None:
    """The parametrized test above covers every legacy input of the copied conformance data."""
    names = {p.name.removesuffix("-legacy-input.json") for p in LEGACY_INPUTS}
    outputs = {p.name.removesuffix("-cloudevent-output.json") for p in CONFORMANCE.glob("*-cloudevent-output.json")}
    assert len(names) == 17 and names <= outputs


MAPPING = FIXTURES / "functions-framework-conformance" / "docs" / "mapping.md"


def _mapping_table(header: str) -> list[tuple[str, str]]:
    """The rows of one two-column table of the conformance mapping document."""
    lines = MAPPING.read_text().splitlines()
    start = lines.index(header) + 2  # the header, then |-|-|
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        left, right = line.strip("|").split("|")
        rows.append((left, right))
    return rows


TYPE_ROWS = _mapping_table("|*gcf_event_type*|*ce_type*|")
SERVICE_ROWS = _mapping_table("|*gcf_event_type* prefix|*gcf_service*|")
#: services of the types no prefix row names: such deliveries carry context.resource.service
EXPLICIT_SERVICES = {
    "google.pubsub.": "pubsub.googleapis.com",
    "google.storage.": "storage.googleapis.com",
    "providers/firebase.remoteConfig/": "firebaseremoteconfig.googleapis.com",
}
#: per service: the legacy resource name, and the source and subject the document derives from it
RESOURCES = {
    "pubsub.googleapis.com": ("projects/p/topics/t", "projects/p/topics/t", None),
    "storage.googleapis.com": (
        "projects/_/buckets/b/objects/folder/f.txt#1588778055917163",
        "projects/_/buckets/b",
        "objects/folder/f.txt",
    ),
    "firestore.googleapis.com": (
        "projects/p/databases/(default)/documents/users/u1",
        "projects/p/databases/(default)",
        "documents/users/u1",
    ),
    "firebaseauth.googleapis.com": ("projects/p", "projects/p", "users/u-1"),
    "firebasedatabase.googleapis.com": (
        "projects/_/instances/i/refs/a/b",
        "projects/_/locations/europe-west1/instances/i",
        "refs/a/b",
    ),
    "firebaseanalytics.googleapis.com": (
        "projects/p/events/session_start",
        "projects/p/apps/com.example",
        "events/session_start",
    ),
    "firebaseremoteconfig.googleapis.com": ("projects/p", "projects/p", None),
}


def test_the_mapping_tables_are_read() -> None:
    assert len(TYPE_ROWS) == 18 and len(SERVICE_ROWS) == 6


@pytest.mark.parametrize("form", ["flat", "context"])
@pytest.mark.parametrize(("gcf_type", "ce_type"), TYPE_ROWS, ids=[row[0] for row in TYPE_ROWS])
def test_every_type_of_the_mapping_document(gcf_type: str, ce_type: str, form: str) -> None:
    """Each row of the conformance mapping's type table, with the service rules for its
    source and subject, including the types no conformance fixture sends."""
    prefixed = [service for prefix, service in SERVICE_ROWS if gcf_type.startswith(prefix)]
    explicit = [service for prefix, service in EXPLICIT_SERVICES.items() if gcf_type.startswith(prefix)]
    (service,) = prefixed or explicit
    name, source, subject = RESOURCES[service]
    data: dict[str, Any] = {"uid": "u-1", "metadata": {"createdAt": "2020-05-26T10:42:27.088Z", "lastSignedInAt": "x"}}
    data["userDim"] = {"appInfo": {"appId": "com.example"}}
    resource: Any = {"service": service, "name": name} if explicit else name
    context = {"eventId": "e-1", "timestamp": "2020-09-29T11:32:00.123Z", "eventType": gcf_type, "resource": resource}
    body: dict[str, Any] = {"context": context, "data": data} if form == "context" else {**context, "data": data}
    if service == "firebasedatabase.googleapis.com":
        body["domain"] = "europe-west1.firebasedatabase.app"
    event = legacy_event(body)
    assert (event.type, event.id, event.datacontenttype) == (ce_type, "e-1", "application/json")
    assert (event.source, event.subject) == (f"//{service}/{source}", subject)
    assert event.time == datetime.fromisoformat("2020-09-29T11:32:00.123+00:00")
    expected: Any = json.loads(json.dumps(data))
    if service == "pubsub.googleapis.com":
        expected = {"message": {**expected, "messageId": "e-1", "publishTime": "2020-09-29T11:32:00.123Z"}}
    elif service == "firebaseauth.googleapis.com":
        expected["metadata"] = {"createTime": "2020-05-26T10:42:27.088Z", "lastSignInTime": "x"}
    assert event.data == expected
    event.to_sdk()


def test_firebase_database_event_without_domain_is_refused(runtime: Any) -> None:
    asgi, seen = runtime
    body = _load(CONFORMANCE / "firebase-db1-legacy-input.json")
    del body["domain"]
    with pytest.raises(BadEvent, match="domain"):
        legacy_event(body)
    status, text = post_json(asgi, "/_overcast/events", body)
    assert status == 400 and b"domain" in text
    assert seen.events == []


def test_unknown_legacy_type_is_refused(runtime: Any) -> None:
    asgi, _ = runtime
    body = _load(CONFORMANCE / "storage-legacy-input.json")
    body["context"]["eventType"] = "providers/unknown/eventTypes/x"
    status, text = post_json(asgi, "/_overcast/events", body)
    assert status == 400 and b"providers/unknown/eventTypes/x" in text


@pytest.mark.parametrize("path", BINARY, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_binary_example_body(runtime: Any, path: Path) -> None:
    """Each body Eventarc sends in binary mode, with the folder's type, reaches the route unchanged."""
    asgi, seen = runtime
    ce_type = TYPES[path.parent.name]
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "evt-1",
        "ce-source": f"//example.googleapis.com/{path.stem}",
        "ce-type": ce_type,
        "ce-time": "2021-02-05T04:06:14.109Z",
        "content-type": "application/json",
    }
    status, text = call(asgi, "POST", "/_overcast/events", path.read_bytes(), headers)
    assert status == 204, text
    ((_, event),) = seen.events
    assert (event.type, event.id, event.datacontenttype) == (ce_type, "evt-1", "application/json")
    assert event.data == _load(path)


@pytest.mark.parametrize("path", STRUCTURED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_structured_example(runtime: Any, path: Path) -> None:
    asgi, seen = runtime
    given = _load(path)
    headers = {"content-type": "application/cloudevents+json; charset=utf-8"}
    status, text = call(asgi, "POST", "/_overcast/events", path.read_bytes(), headers)
    assert status == 204, text
    ((_, event),) = seen.events
    for name in ATTRIBUTES:
        assert getattr(event, name) == given.get(name), name
    assert event.time == datetime.fromisoformat(given["time"].replace("Z", "+00:00"))
    assert event.data == given["data"]
    # extension names as CloudEvents spells them (the audit example writes methodName)
    extensions = {name.lower() for name in set(given) - {*ATTRIBUTES, "time", "data", "specversion"}}
    assert set(event.extensions) == extensions


@pytest.mark.parametrize("path", TESTDATA, ids=lambda p: str(p.relative_to(GCE / "testdata")))
def test_testdata_payload_in_both_modes(runtime: Any, path: Path) -> None:
    asgi, seen = runtime
    ce_type = TYPES[path.parent.parent.name]
    data = _load(path)
    sdk = SDKCloudEvent(
        {"specversion": "1.0", "id": "t-1", "source": "//test", "type": ce_type, "datacontenttype": "application/json"},
        data,
    )
    for message in (to_binary_event(sdk), to_structured_event(sdk)):
        status, text = call(asgi, "POST", "/_overcast/events", message.body, dict(message.headers))
        assert status == 204, text
    assert [e.data for _, e in seen.events] == [data, data]
    assert {e.type for _, e in seen.events} == {ce_type}


@pytest.mark.parametrize("path", sorted((GCE / "examples" / "binary" / "pubsub").glob("*.json")), ids=lambda p: p.stem)
def test_pubsub_example_as_a_push_delivery(runtime: Any, path: Path) -> None:
    """The push bodies of a foreign subscription become ``messagePublished`` events as Eventarc sends them."""
    asgi, seen = runtime
    body = _load(path)
    status, text = post_json(asgi, "/_overcast/pubsub", body)
    assert status == 204, text
    ((_, event),) = seen.events
    assert event.type == "google.cloud.pubsub.topic.v1.messagePublished"
    assert event.id == body["message"]["messageId"]
    assert event.source == f"//pubsub.googleapis.com/{body['subscription']}"
    assert event.time == datetime.fromisoformat(body["message"]["publishTime"].replace("Z", "+00:00"))
    assert event.data == {"message": body["message"], "subscription": body["subscription"]}
    assert event.original == body
