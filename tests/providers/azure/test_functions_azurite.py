"""Queue triggers against real Storage Queues (Azurite): a fake of the Functions host's queue
listener (no Functions host runs here) fetches messages with azure-storage-queue as the
host does, decodes them per ``host.json``'s ``messageEncoding``, hands them to the
generated function through azure-functions' converter, and settles them from the outcome:
delete on success, visible again on failure, ``<queue>-poison`` after ``maxDequeueCount``."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azf_support import Context, Worker, make_app
from azure.functions import meta
from azure.functions.queue import QueueMessageInConverter
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from overcast.providers.azure import function_app
from overcast.providers.azure.functions_project import host_json
from overcast.runtime.cloudevent import CloudEvent


class FakeQueueHost:
    """What the Functions host does for one queue trigger, on the real queue service."""

    def __init__(self, connection: str, queue: str, host: dict[str, Any]) -> None:
        settings = host["extensions"]["queues"]
        self.max_dequeue = int(settings["maxDequeueCount"])
        self.base64 = settings.get("messageEncoding", "base64") == "base64"
        self.client = QueueClient.from_connection_string(connection, queue)
        self.poison = QueueClient.from_connection_string(connection, f"{queue}-poison")
        self.errors: list[Exception] = []

    def poll(self, worker: Worker, function: str) -> list[str]:
        outcomes = []
        pages = self.client.receive_messages(messages_per_page=32, visibility_timeout=30).by_page()
        for message in next(pages, []):  # one fetch, as one poll of the host
            text = message.content
            if self.base64:
                text = base64.b64decode(text).decode()
            d = meta.Datum
            metadata = {
                "Id": d(message.id, "string"),
                "DequeueCount": d(str(message.dequeue_count), "string"),
                "PopReceipt": d(message.pop_receipt, "string"),
                "InsertionTime": d(message.inserted_on.isoformat(), "string"),
                "ExpirationTime": d(message.expires_on.isoformat(), "string"),
                "NextVisibleTime": d(message.next_visible_on.isoformat(), "string"),
            }
            given = QueueMessageInConverter.decode(d(text, "string"), trigger_metadata=metadata)
            try:
                worker.call(function, given, Context(function))
            except Exception as exc:
                self.errors.append(exc)
                if message.dequeue_count >= self.max_dequeue:
                    self.poison.send_message(message.content)
                    self.client.delete_message(message)
                    outcomes.append("poison")
                else:
                    self.client.update_message(message, visibility_timeout=0)
                    outcomes.append("retry")
            else:
                self.client.delete_message(message)
                outcomes.append("ok")
        return outcomes


@pytest.fixture
def queue_setup(
    azurite: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FakeQueueHost, Worker, list[CloudEvent], set[str], QueueClient]]:
    monkeypatch.setenv("OVERCAST_TARGET", "azure")
    app = make_app(tmp_path, name=f"t{uuid.uuid4().hex[:10]}")
    jobs = app.queue("jobs")
    seen: list[CloudEvent] = []
    fail: set[str] = set()

    @app.subscribe(jobs, max_attempts=2)
    async def work(event: CloudEvent) -> None:
        seen.append(event)
        if event.data.get("n") in fail:
            raise RuntimeError("failed")

    connection = azurite.env["AZURE_STORAGE_CONNECTION_STRING"]
    name = f"{app.name}-jobs"
    producer = QueueClient.from_connection_string(connection, name, message_encode_policy=TextBase64EncodePolicy())
    producer.create_queue()
    QueueClient.from_connection_string(connection, f"{name}-poison").create_queue()
    worker = Worker(function_app(app))
    host = FakeQueueHost(connection, name, host_json(app, message_encoding="base64"))
    yield host, worker, seen, fail, producer
    worker.close()


def test_queue_messages_from_storage_reach_the_handler(queue_setup: Any) -> None:
    host, worker, seen, _, producer = queue_setup
    sent = [producer.send_message(json.dumps({"n": n})).id for n in ("a", "b")]
    assert host.poll(worker, "queue_jobs") == ["ok", "ok"]
    assert sorted(e.id for e in seen) == sorted(sent)
    assert sorted(e.data["n"] for e in seen) == ["a", "b"]
    assert all(e.extensions["attempts"] == 1 and e.original.dequeue_count == 1 for e in seen)
    assert host.poll(worker, "queue_jobs") == []  # deleted


def test_a_failing_message_comes_back_then_goes_to_the_poison_queue(queue_setup: Any) -> None:
    host, worker, seen, fail, producer = queue_setup
    fail.add("x")
    producer.send_message(json.dumps({"n": "x"}))
    assert host.max_dequeue == 2
    assert host.poll(worker, "queue_jobs") == ["retry"]
    assert host.poll(worker, "queue_jobs") == ["poison"]
    assert [e.extensions["attempts"] for e in seen] == [1, 2]
    assert seen[0].id == seen[1].id  # the same message, for idempotent handlers
    poisoned = list(host.poison.receive_messages())
    assert [json.loads(base64.b64decode(m.content)) for m in poisoned] == [{"n": "x"}]


# -- with the azqueue:// provider on the sending side --------------------------------------


@pytest.fixture
def provider_setup(azurite: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("OVERCAST_TARGET", "azure")
    app = make_app(tmp_path, name=f"t{uuid.uuid4().hex[:10]}")
    jobs = app.queue("jobs")
    signups = app.topic("signups")
    seen: list[tuple[str, CloudEvent]] = []
    fail: set[str] = set()

    def handler(name: str) -> Any:
        async def handle(event: CloudEvent) -> None:
            seen.append((name, event))
            if name in fail:
                raise RuntimeError(f"{name} failed")

        return handle

    app.subscribe(jobs, name="work", max_attempts=2)(handler("work"))
    app.subscribe(signups, name="welcome", max_attempts=3)(handler("welcome"))
    app.subscribe(signups, name="audit")(handler("audit"))
    asyncio.run(app.provision())
    fa = function_app(app)
    worker = Worker(fa)
    connection = azurite.env["AZURE_STORAGE_CONNECTION_STRING"]
    host = host_json(app)
    # get_functions() runs once per FunctionApp (it remembers the names it saw): the Worker ran it.
    queues = {
        name: json.loads(fn.get_function_json())["bindings"][0]["queueName"] for name, fn in worker.functions.items()
    }
    yield {
        "app": app,
        "jobs": jobs,
        "signups": signups,
        "seen": seen,
        "fail": fail,
        "worker": worker,
        "hosts": {fn: FakeQueueHost(connection, queue, host) for fn, queue in queues.items()},
        "host_json": host,
    }
    worker.close()
    app.reset()


def test_host_json_follows_the_provider_encoding_and_the_largest_limit(provider_setup: dict[str, Any]) -> None:
    queues = provider_setup["host_json"]["extensions"]["queues"]
    assert queues["messageEncoding"] == "none"
    assert queues["maxDequeueCount"] == 5  # audit's default; work allows 2 and welcome 3


def test_a_message_sent_by_the_provider_keeps_its_id_and_attributes(provider_setup: dict[str, Any]) -> None:
    s = provider_setup
    sent = s["jobs"].sync.send({"order": 7}, attributes={"tenant": "acme"})
    assert s["hosts"]["queue_jobs"].poll(s["worker"], "queue_jobs") == ["ok"]
    [(name, event)] = s["seen"]
    assert (name, event.id, event.data, event.extensions["tenant"]) == ("work", sent, {"order": 7}, "acme")


def test_a_topic_publish_reaches_every_subscription_function(provider_setup: dict[str, Any]) -> None:
    s = provider_setup
    sent = s["signups"].sync.publish({"user": "u-1"})
    for fn in ("topic_signups_welcome", "topic_signups_audit"):
        assert s["hosts"][fn].poll(s["worker"], fn) == ["ok"]
    assert sorted((n, e.id, e.subject, e.data["user"]) for n, e in s["seen"]) == [
        ("audit", sent, "audit", "u-1"),
        ("welcome", sent, "welcome", "u-1"),
    ]


def test_a_subscription_with_fewer_attempts_than_the_host_dead_letters_itself(provider_setup: dict[str, Any]) -> None:
    s = provider_setup
    s["fail"].add("work")
    sent = s["jobs"].sync.send({"order": 8})
    host = s["hosts"]["queue_jobs"]
    assert host.max_dequeue == 5
    assert host.poll(s["worker"], "queue_jobs") == ["retry"]
    out = host.poll(s["worker"], "queue_jobs")
    assert out == ["ok"], host.errors  # moved aside by the function, deleted by the host
    assert host.poll(s["worker"], "queue_jobs") == []
    [dead] = s["jobs"].dead_letters().sync.receive(max_messages=1)
    assert (dead.id, dead.body) == (sent, {"order": 8})
