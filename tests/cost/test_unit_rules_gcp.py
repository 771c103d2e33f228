"""Google Cloud unit rules against the emulators: the RPCs each Overcast operation makes,
counted by a gRPC client interceptor on the real Firestore and Pub/Sub clients' channels
and by a recording proxy in front of fake-gcs-server, are the ones the rule prices (a
conditional Firestore put is a read and a write; a delete is a read and a delete)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest
from counting_proxy import CountingProxy, Seen, counting
from drivers import DRIVERS
from rules_support import apis, offer

import overcast


class Recorder(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Every RPC the client starts on an intercepted channel, by method name (``Commit``)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def _note(self, details: Any, request: Any) -> None:
        with self._lock:
            self.seen.append((details.method.rsplit("/", 1)[1], request))

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self._note(details, request)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self._note(details, request)
        return continuation(details, request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._note(details, None)
        return continuation(details, requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._note(details, None)
        return continuation(details, requests)

    def take(self) -> list[tuple[str, Any]]:
        with self._lock:
            seen, self.seen = self.seen, []
        return seen


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Channels made from now on (a new client's) are intercepted."""
    found = Recorder()
    plain = grpc.insecure_channel
    monkeypatch.setattr(grpc, "insecure_channel", lambda *a, **k: grpc.intercept_channel(plain(*a, **k), found))
    return found


FIRESTORE_OPS = ["get", "put", "put_conditional", "put_absent", "delete", "scan"]


@pytest.mark.parametrize("op", FIRESTORE_OPS)
def test_firestore_operations_make_the_calls_their_rule_prices(
    firestore_emulator: Any, recorder: Recorder, op: str
) -> None:
    project = f"cost-{uuid.uuid4().hex[:8]}"  # a new project: a new client, on an intercepted channel
    store = overcast.open_kv(f"firestore://c{uuid.uuid4().hex[:8]}?project={project}")
    rule = offer("gcp", "kv", "firestore")
    sent = DRIVERS["kv"](store, op, 3000, recorder.take)
    assert [name for name, _ in sent] == apis(rule.calls(op, 3000))
    writes = [w for name, request in sent if name == "Commit" for w in request.writes]
    units = {unit: n for call in rule.calls(op, 3000) for unit, n in call.units.items()}
    assert len(writes) == units.get("writes", 0) + units.get("deletes", 0)  # one document written a Commit
    assert sum(1 for w in writes if w.delete) == units.get("deletes", 0)
    if op == "put_conditional":
        assert writes[0].current_document.update_time  # the condition: a precondition after the read
    store.close()


@pytest.mark.parametrize("kind,op", [("queue", "send"), ("queue", "receive"), ("queue", "ack"), ("topic", "publish")])
def test_pubsub_operations_make_the_calls_their_rule_prices(
    pubsub_emulator: Any, recorder: Recorder, monkeypatch: pytest.MonkeyPatch, kind: str, op: str
) -> None:
    from overcast.providers.gcp import pubsub

    monkeypatch.setattr(pubsub, "_clients", {})  # new clients, on intercepted channels
    name = f"t{uuid.uuid4().hex[:8]}"
    store = getattr(overcast, f"open_{kind}")(
        f"pubsub://{name}" + (f"?subscription=s{name}" if kind == "queue" else "")
    )
    store.sync.create()
    rule = offer("gcp", kind, "pubsub")
    sent = DRIVERS[kind](store, op, 3000, recorder.take)
    billed = [name for name, _ in sent if name in {"Publish", "Pull", "StreamingPull", "Acknowledge"}]
    assert billed == apis(rule.calls(op, 3000)), [n for n, _ in sent]
    store.close()


@pytest.fixture(scope="module")
def gcs_proxy(gcs_emulator: Any) -> Iterator[CountingProxy]:
    with counting(gcs_emulator.address) as proxy:
        yield proxy


def gcs_api(seen: Seen) -> str:
    """A JSON API request: an upload, an object's media or metadata, a deletion, a listing."""
    parts = urlsplit(seen.path)
    query = parse_qs(parts.query)
    if parts.path.startswith("/upload/"):
        return f"{seen.method} upload"
    if parts.path.startswith("/download/") or query.get("alt") == ["media"]:
        return "GET object"
    if parts.path.endswith("/o"):
        return "GET list"
    return {"GET": "GET metadata", "DELETE": "DELETE object"}.get(seen.method, f"{seen.method} other")


@pytest.mark.parametrize("op", ["put", "get", "head", "delete", "list"])
def test_gcs_operations_send_what_their_rule_prices(
    gcs_proxy: CountingProxy, monkeypatch: pytest.MonkeyPatch, op: str
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_proxy.endpoint)
    project = f"cost-{uuid.uuid4().hex[:8]}"  # a new client, reading the proxy's address
    store = overcast.open_bucket(f"gs://b-{uuid.uuid4().hex[:10]}?project={project}")
    store.sync.create()
    rule = offer("gcp", "bucket", "gs")
    sent = DRIVERS["bucket"](store, op, 3000, gcs_proxy.take)
    assert [gcs_api(s) for s in sent] == apis(rule.calls(op, 3000)), [(s.method, s.path) for s in sent]
    store.close()
