"""Non-HTTP Lambda events: every SQS, SNS, S3, EventBridge, schedule, DynamoDB-stream and
Kinesis fixture becomes CloudEvents (checked by the ``cloudevents`` SDK) that reach the
app's handlers with the original record; partial batch failures; routing to the app's own
queues, topics and schedules."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.bindings.http import from_http_event, to_binary_event, to_structured_event

import overcast
from overcast.providers.aws import lambda_handler
from overcast.providers.aws.lambda_events import (
    UnroutedEvent,
    _subscription_queue_name,
    event_kind,
    to_cloudevents,
)
from overcast.providers.aws.sqs import encode_attribute_name
from overcast.runtime.cloudevent import CloudEvent
from overcast.runtime.dispatch import QUEUE_MESSAGE, SCHEDULE, TOPIC_MESSAGE

FIXTURES = Path(__file__).parents[2] / "fixtures" / "aws"
KINDS = ("sqs", "sns", "s3", "dynamodb", "kinesis", "schedule", "eventbridge")


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _event_fixtures() -> list[Path]:
    out = []
    for path in sorted(FIXTURES.rglob("*.json")):
        if event_kind(_load(path)) in KINDS:
            out.append(path)
    return out


EVENT_FIXTURES = _event_fixtures()
ids = [str(p.relative_to(FIXTURES)) for p in EVENT_FIXTURES]


class Context:
    aws_request_id = "req-9"


def _records(event: dict[str, Any]) -> list[Any]:
    return list(event["Records"]) if "Records" in event else [event]


def test_the_fixtures_cover_every_kind() -> None:
    kinds = {event_kind(_load(p)) for p in EVENT_FIXTURES}
    assert kinds == set(KINDS)


@pytest.mark.parametrize("path", EVENT_FIXTURES, ids=ids)
def test_every_fixture_becomes_valid_cloudevents_keeping_the_record(path: Path) -> None:
    event = _load(path)
    events = to_cloudevents(event)
    records = _records(event)
    assert len(events) == len(records)
    for ce, record in zip(events, records, strict=True):
        assert ce.original is record
        assert ce.specversion == "1.0" and ce.id and ce.source and ce.type
        sdk = ce.to_sdk()  # the SDK validates every attribute
        assert CloudEvent.from_sdk(sdk, original=record) == ce
        kind = event_kind(event)
        if kind in ("schedule", "eventbridge"):
            assert (ce.type, ce.source, ce.data) == (event["detail-type"], event["source"], event["detail"])
        elif kind == "sqs" and ce.type == "aws.sns.Notification":
            envelope = json.loads(record["body"])
            assert ce.source == envelope["TopicArn"] and ce.id == envelope["MessageId"]
        else:
            assert ce.type.startswith(f"aws.{kind}.")
        if kind == "s3":
            assert ce.source == f"arn:aws:s3:::{record['s3']['bucket']['name']}"
            assert ce.data == record["s3"]


@pytest.mark.parametrize("path", EVENT_FIXTURES, ids=ids)
def test_every_fixture_reaches_its_routed_handler(path: Path) -> None:
    app = overcast.App("fixtures")
    inbox = app.queue("inbox")
    seen: list[CloudEvent] = []

    @app.subscribe(inbox)
    def collect(event: CloudEvent) -> None:
        seen.append(event)

    @app.schedule("rate(1 hour)")
    async def hourly(event: CloudEvent) -> None:
        seen.append(event)

    event = _load(path)
    kind = event_kind(event)
    handler = lambda_handler(app, routes={"ExampleRule": "hourly", "*": "collect"})
    result = handler(copy.deepcopy(event), Context())
    records = _records(event)
    if kind in ("sqs", "dynamodb", "kinesis"):
        assert result == {"batchItemFailures": []}
    else:
        assert result is None
    assert len(seen) == len(records)
    assert [e.original for e in seen] == records
    if kind == "schedule":
        assert seen[0].type == "Scheduled Event" and seen[0].source == "aws.events"


def _one(name: str) -> dict[str, Any]:
    event: dict[str, Any] = _load(FIXTURES / name)
    return event


SQS = "powertools-lambda-python/events/sqsEvent.json"
SNS_SQS_FIFO = "powertools-lambda-python/events/snsSqsFifoEvent.json"
KINESIS = "powertools-lambda-python/events/kinesisStreamEvent.json"
DYNAMO = "powertools-lambda-python/events/dynamoStreamEvent.json"
SNS = "aws-lambda-go/events/sns-event.json"
SCHEDULED = "aws-sam-cli/rendered/cloudwatch/scheduled-event.json"


def _batch(template: dict[str, Any], count: int, arn: str, bodies: list[Any] | None = None) -> dict[str, Any]:
    records = []
    for i in range(count):
        record = copy.deepcopy(template["Records"][0])
        record["messageId"] = f"m{i}"
        record["eventSourceARN"] = arn
        record["body"] = json.dumps(bodies[i] if bodies else {"n": i})
        records.append(record)
    return {"Records": records}


def test_one_failing_sqs_record_fails_only_that_record() -> None:
    app = overcast.App("shop")
    seen: list[int] = []

    async def work(event: CloudEvent) -> None:
        if event.data["n"] == 2:
            raise ValueError("bad order")
        seen.append(event.data["n"])

    handler = lambda_handler(app, routes={"orders": work})
    result = handler(_batch(_one(SQS), 5, "arn:aws:sqs:us-east-1:1:orders"), Context())
    assert result == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert sorted(seen) == [0, 1, 3, 4]


def test_on_a_fifo_queue_a_failure_gives_back_the_rest_of_the_batch() -> None:
    app = overcast.App("shop")
    seen: list[int] = []

    def work(event: CloudEvent) -> None:
        if event.data["n"] == 1:
            raise ValueError("bad")
        seen.append(event.data["n"])

    handler = lambda_handler(app, routes={"orders.fifo": work})
    result = handler(_batch(_one(SQS), 4, "arn:aws:sqs:us-east-1:1:orders.fifo"), Context())
    assert result == {"batchItemFailures": [{"itemIdentifier": i} for i in ("m1", "m2", "m3")]}
    assert seen == [0]


@pytest.mark.parametrize(("name", "sequence"), [(KINESIS, "kinesis"), (DYNAMO, "dynamodb")])
def test_a_stream_batch_stops_at_the_first_failure(name: str, sequence: str) -> None:
    event = _one(name)
    event["Records"] = [copy.deepcopy(event["Records"][0]) for _ in range(3)]
    for i, record in enumerate(event["Records"]):
        if sequence == "kinesis":
            record["kinesis"]["sequenceNumber"] = f"seq{i}"
        else:
            record["dynamodb"]["SequenceNumber"] = f"seq{i}"
    calls: list[str] = []

    def work(ce: CloudEvent) -> None:
        calls.append(ce.id)
        if len(calls) == 2:
            raise RuntimeError("poison")

    result = lambda_handler(overcast.App("streams"), routes={"*": work})(event, Context())
    assert result == {"batchItemFailures": [{"itemIdentifier": "seq1"}]}
    assert len(calls) == 2


def test_kinesis_data_is_decoded() -> None:
    ce = to_cloudevents(_one("aws-lambda-go/events/kinesis-event.json"))[0]
    assert ce.data == b"Hello World" and ce.datacontenttype == "application/octet-stream"
    assert ce.subject == "s1" and ce.type == "aws.kinesis.record"


def _app_on_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> overcast.App:
    (tmp_path / "overcast.toml").write_text(
        '[app]\n[targets.aws]\nqueue.orders = "sqs://shop-orders"\ntopic.signups = "sns://shop-signups"\n'
    )
    monkeypatch.setenv("OVERCAST_TARGET", "aws")
    return overcast.App("shop", config=tmp_path / "overcast.toml")


def test_an_app_queue_gets_the_same_event_as_everywhere_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app_on_aws(tmp_path, monkeypatch)
    orders = app.queue("orders")
    seen: list[CloudEvent] = []

    @app.subscribe(orders)
    async def take_order(event: CloudEvent) -> None:
        seen.append(event)

    event = _batch(_one(SQS), 2, "arn:aws:sqs:us-east-1:123456789012:shop-orders", [{"id": "o1"}, {"id": "o2"}])
    event["Records"][0]["messageAttributes"] = {
        "Origin": {"stringValue": "web", "dataType": "String"},
        encode_attribute_name("trace id ✓"): {"stringValue": "t1", "dataType": "String"},  # escaped by the provider
    }
    assert lambda_handler(app)(event, Context()) == {"batchItemFailures": []}
    first = next(e for e in seen if e.id == "m0")
    assert first.type == QUEUE_MESSAGE
    assert first.source == "overcast://shop/queue/orders"
    assert first.data == {"id": "o1"}
    assert first.extensions["attempts"] == int(event["Records"][0]["attributes"]["ApproximateReceiveCount"])
    assert first.extensions["origin"] == "web"
    assert first.original["messageAttributes"]
    assert first.extensions["traceid"] == "t1"  # "trace id ✓" as the local providers name it
    assert first.original is event["Records"][0]


def test_a_topic_subscription_queue_unwraps_the_sns_notification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app_on_aws(tmp_path, monkeypatch)
    signups = app.topic("signups")
    seen: list[CloudEvent] = []

    @app.subscribe(signups)
    def welcome(event: CloudEvent) -> None:
        seen.append(event)

    queue = _subscription_queue_name(app.subscriptions[0])
    event = _one(SNS_SQS_FIFO)
    envelope = json.loads(event["Records"][0]["body"])
    envelope["Message"] = json.dumps({"id": "u1"})
    envelope["MessageAttributes"] = {"trace": {"Type": "String", "Value": "abc"}}
    event["Records"][0]["body"] = json.dumps(envelope)
    event["Records"][0]["eventSourceARN"] = f"arn:aws:sqs:us-east-1:123456789012:{queue}"
    assert lambda_handler(app)(event, Context()) == {"batchItemFailures": []}
    [ce] = seen
    assert (ce.type, ce.id, ce.data, ce.subject) == (TOPIC_MESSAGE, envelope["MessageId"], {"id": "u1"}, "welcome")
    assert ce.source == "overcast://shop/topic/signups"
    assert ce.extensions["trace"] == "abc"


def test_sns_to_an_app_topic_reaches_every_subscription(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app_on_aws(tmp_path, monkeypatch)
    signups = app.topic("signups")
    got: list[tuple[str, Any]] = []

    @app.subscribe(signups)
    async def welcome(event: CloudEvent) -> None:
        got.append(("welcome", event.data))

    @app.subscribe(signups)
    async def audit(event: CloudEvent) -> None:
        got.append(("audit", event.data))

    event = _one(SNS)
    event["Records"][0]["Sns"]["TopicArn"] = "arn:aws:sns:us-east-1:123456789012:shop-signups"
    event["Records"][0]["Sns"]["Message"] = json.dumps({"id": "u2"})
    assert lambda_handler(app)(event, Context()) is None
    assert sorted(got) == [("audit", {"id": "u2"}), ("welcome", {"id": "u2"})]


def test_a_failing_sns_subscriber_fails_the_invocation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app_on_aws(tmp_path, monkeypatch)
    signups = app.topic("signups")

    @app.subscribe(signups)
    async def welcome(event: CloudEvent) -> None:
        raise LookupError("mail server down")

    event = _one(SNS)
    event["Records"][0]["Sns"]["TopicArn"] = "arn:aws:sns:us-east-1:123456789012:shop-signups"
    with pytest.raises(LookupError):
        lambda_handler(app)(event, Context())


def test_a_scheduled_rule_fires_the_schedule_named_like_it() -> None:
    app = overcast.App("shop")
    fired: list[Any] = []

    @app.schedule("rate(1 hour)")
    async def nightly() -> None:
        fired.append("nightly")

    @app.schedule("cron(0 3 * * ? *)")
    def report(event: CloudEvent) -> None:
        fired.append(event)

    event = _one(SCHEDULED)
    event["resources"] = ["arn:aws:events:us-east-1:123456789012:rule/shop-report"]
    lambda_handler(app)(event, Context())
    [ce] = fired
    assert ce.type == SCHEDULE and ce.subject == "report" and ce.original == event
    event["resources"] = ["arn:aws:events:us-east-1:123456789012:rule/nightly"]
    lambda_handler(app)(event, Context())
    assert fired[-1] == "nightly"


def test_events_nobody_handles_fail_with_a_hint() -> None:
    app = overcast.App("shop")
    handler = lambda_handler(app)
    with pytest.raises(UnroutedEvent, match="routes="):
        handler(_one(SNS), Context())
    with pytest.raises(UnroutedEvent, match="no schedule matches rule ExampleRule"):
        handler(_one(SCHEDULED), Context())
    with pytest.raises(UnroutedEvent, match="does not know this event"):
        handler({"hello": "world"}, Context())
    # In a batch, an unrouted record is a failed record: it comes back, then goes to the DLQ.
    assert handler(_one(SQS), Context())["batchItemFailures"]


def test_a_route_naming_nothing_is_a_config_error() -> None:
    with pytest.raises(overcast.errors.ConfigError, match="names no subscription or schedule"):
        lambda_handler(overcast.App("shop"), routes={"*": "missing"}).router  # noqa: B018


def test_cloudevents_travel_through_the_sdks_http_binding() -> None:
    ce = to_cloudevents(_one(SNS))[0]
    for message in (to_structured_event(ce.to_sdk()), to_binary_event(ce.to_sdk())):
        back = CloudEvent.from_sdk(from_http_event(message))
        assert back == ce
