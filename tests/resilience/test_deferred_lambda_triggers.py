"""Deferred processing through Lambda's other triggers: SNS (an app topic), EventBridge (a
custom event routed to a subscription), Kinesis and DynamoDB streams (batches), each with its
real payload through ``lambda_handler``, to a non-critical subscriber whose dependency (a
Redis server of this module's) is frozen; the backlog on SQS (moto); the replay fired by
EventBridge's rule of the internal schedule until drained.

Each kind: every event handled exactly once per id, none lost, none dead-lettered, with the
data it was sent with; the invocation succeeded (no raise: SNS and EventBridge do not retry
it; a stream batch answers no failures: Lambda does not resume from a record).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import overcast
from overcast.resilience.breaker import breakers
from overcast.runtime.cloudevent import CloudEvent
from overcast.runtime.deferral import subscription_deferral
from resilience.test_deferred import FIXTURES, LambdaContext, dependency_url, drain_by, freeze, stream_checked
from servers import Server
from servers.redis import start_redis

#: events of each kind, 15 of them during the outage (ten times as many with OVERCAST_LONG=1)
LONG = os.environ.get("OVERCAST_LONG", "").strip().lower() in ("1", "true", "yes")
DURING = 150 if LONG else 15
BEFORE = AFTER = 3
EVENTS = Path(FIXTURES) / "powertools-lambda-python" / "events"
ACCOUNT = "arn:aws:{}:us-east-1:123456789012:{}"


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


def _fixture(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


class Kind:
    """One trigger: how its invocations are made from event numbers, the id each event gets,
    the reply Lambda must get, and the number an event's data carries (to check the data)."""

    def __init__(self, name: str, suffix: str) -> None:
        self.name, self.suffix = name, suffix
        self.source = ACCOUNT.format("kinesis", f"stream/clicks-{suffix}")
        if name == "dynamodb":
            self.source = ACCOUNT.format("dynamodb", f"table/users-{suffix}/stream/2026-12-08T00:00:00.000")
        self.topic_arn = ACCOUNT.format("sns", f"signups-{suffix}")

    def routes(self) -> dict[str, str]:
        if self.name == "eventbridge":
            return {"com.example.signups": "work"}
        return {self.source: "work"} if self.name in ("kinesis", "dynamodb") else {}

    def event_id(self, n: int) -> str:
        if self.name == "kinesis":
            return f"shardId-000000000006:{self.sequence(n)}"
        return f"{self.name}-{self.suffix}-{n}"

    def sequence(self, n: int) -> str:
        return f"4959033827149025660855969253836157109592157598913{n:07d}"

    def invocations(self, numbers: range) -> list[dict[str, Any]]:
        """The events Lambda invokes with: one per SNS or EventBridge event, stream batches of ten."""
        if self.name == "sns":
            return [self._sns(n) for n in numbers]
        if self.name == "eventbridge":
            return [self._eventbridge(n) for n in numbers]
        record = self._kinesis if self.name == "kinesis" else self._dynamodb
        starts = range(numbers.start, numbers.stop, 10)
        return [{"Records": [record(n) for n in range(s, min(s + 10, numbers.stop))]} for s in starts]

    def reply(self) -> Any:
        return {"batchItemFailures": []} if self.name in ("kinesis", "dynamodb") else None

    def _sns(self, n: int) -> dict[str, Any]:
        event = _fixture("snsEvent.json")
        sns = event["Records"][0]["Sns"]
        sns.update({"TopicArn": self.topic_arn, "MessageId": self.event_id(n), "Message": json.dumps({"n": n})})
        sns["MessageAttributes"] = {"origin": {"Type": "String", "Value": "signup-form"}}
        return event

    def _eventbridge(self, n: int) -> dict[str, Any]:
        event = _fixture("eventBridgeEvent.json")
        event.pop("replay-name")
        event.update({"id": self.event_id(n), "source": "com.example.signups", "detail-type": "Signup"})
        event["detail"] = {"n": n, "user": f"u-{n}"}
        event["resources"] = []
        return event

    def _kinesis(self, n: int) -> dict[str, Any]:
        record = copy.deepcopy(_fixture("kinesisStreamEvent.json")["Records"][0])
        # JSON data, and every fourth record bytes that are not (the fixture's own kind)
        raw = f"click {n}".encode() if n % 4 == 3 else json.dumps({"n": n}).encode()
        record["kinesis"].update({"sequenceNumber": self.sequence(n), "data": base64.b64encode(raw).decode()})
        record.update({"eventID": self.event_id(n), "eventSourceARN": self.source})
        return dict(record)

    def _dynamodb(self, n: int) -> dict[str, Any]:
        record = copy.deepcopy(_fixture("dynamoStreamEvent.json")["Records"][0])
        change = record["dynamodb"]
        change.update({"SequenceNumber": f"{100 + n}", "Keys": {"Id": {"N": str(n)}}})
        change["NewImage"] = {"Id": {"N": str(n)}, "Message": {"S": f"user {n}"}}
        record.update({"eventID": self.event_id(n), "eventSourceARN": self.source})
        return dict(record)

    def number(self, event: CloudEvent) -> int:
        """The number the event's data carries: what it was sent with, replayed or not."""
        data = event.data
        if self.name == "dynamodb":
            return int(data["NewImage"]["Id"]["N"])
        if self.name == "kinesis" and isinstance(data, bytes):
            assert data.startswith(b"click ") and event.datacontenttype == "application/octet-stream"
            return int(data.split()[-1])
        return int(data["n"])


def kind_app(tmp_path: Path, kind: Kind, dep: Server, completed: list[CloudEvent]) -> overcast.App:
    """An app on AWS whose non-critical subscriber ``work`` needs ``dep``; backlogs on moto's SQS."""
    suffix = kind.suffix
    (tmp_path / "overcast.toml").write_text(
        f'[targets.aws]\ndefaults.queue = "sqs://{{name}}-{suffix}"\ntopic.signups = "sns://signups-{suffix}"\n'
        f'kv.mail = "{dependency_url(dep)}"\n'
    )
    app = overcast.App(f"defer{kind.name}{suffix}", config=tmp_path / "overcast.toml")
    mail = app.kv("mail")
    source = app.topic("signups") if kind.name == "sns" else app.queue("feed")

    @app.subscribe(source, critical=False, depends_on=[mail])
    async def work(event: CloudEvent) -> None:
        await mail.put(event.id.replace(":", "-"), {"n": kind.number(event)})
        completed.append(event)

    return app


@pytest.mark.parametrize("name", ["sns", "eventbridge", "kinesis", "dynamodb"])
def test_lambda_triggers_park_on_sqs_and_replay(
    name: str, tmp_path: Path, dependency: Server, moto_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from overcast.providers.aws import lambda_handler

    monkeypatch.setenv("OVERCAST_TARGET", "aws")
    kind = Kind(name, uuid.uuid4().hex[:8])
    completed: list[CloudEvent] = []
    app = kind_app(tmp_path, kind, dependency, completed)
    handler = lambda_handler(app, routes=kind.routes())
    invoke = _invoker(handler, kind)
    during = range(BEFORE, BEFORE + DURING)
    last = during.stop + AFTER
    invoke(range(BEFORE))
    assert len(completed) == BEFORE
    freeze(dependency, True)
    try:
        invoke(during)
        assert len(completed) == BEFORE, "nothing handled while the dependency is down"
    finally:
        freeze(dependency, False)
    invoke(range(during.stop, last))  # right after: parked while the breaker is open, else handled
    backlog = subscription_deferral(app.subscriptions[0], app.name).backlog
    assert backlog.queue.location.scheme == "sqs"
    tick = json.loads((Path(FIXTURES) / "aws-sam-cli/rendered/cloudwatch/scheduled-event.json").read_text())
    tick["resources"] = [f"arn:aws:events:us-east-1:123456789012:rule/{app.name}-overcast-replay"]
    drain_by(lambda: handler(tick, LambdaContext()), completed, last)
    sent = {kind.event_id(n): n for n in range(last)}
    replayed = stream_checked(backlog, completed, list(sent), [kind.event_id(n) for n in during])
    assert all(kind.number(e) == sent[e.id] for e in completed), "each event with the data it was sent with"
    assert all(e.extensions.get("attempts", 1) == 1 for e in completed), "Lambda's attempt: the first"
    _same_event(kind, completed, replayed)


def _invoker(handler: Callable[[Any, Any], Any], kind: Kind) -> Callable[[range], None]:
    def invoke(numbers: range) -> None:
        for event in kind.invocations(numbers):
            assert handler(event, LambdaContext()) == kind.reply(), "the invocation succeeded: no retry"

    return invoke


def _same_event(kind: Kind, completed: list[CloudEvent], replayed: list[CloudEvent]) -> None:
    """A replayed event is the one the handler would have got at once: type, source, subject, time."""
    healthy = [e for e in completed if "replay" not in e.extensions]
    assert healthy, "some were handled at once"
    model = healthy[0]
    for event in replayed:
        assert (event.type, event.source) == (model.type, model.source) and event.time is not None
        if kind.name == "sns":
            assert event.extensions["origin"] == "signup-form", "the message's attributes kept"
