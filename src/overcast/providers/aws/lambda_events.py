"""Non-HTTP Lambda events as CloudEvents 1.0, delivered to the app's handlers.

Each record of an SQS, SNS, S3, DynamoDB-stream or Kinesis event, and each EventBridge
event, becomes one :class:`~overcast.CloudEvent` whose ``original`` is the record as
Lambda gave it. A record from one of the app's own queues or topics (or a topic's
subscription queue) becomes a :class:`~overcast.resources.queue.Message` handed to
:func:`overcast.runtime.dispatch.deliver`, so the app gets exactly the event it gets
everywhere else (``overcast.queue.message`` / ``overcast.topic.message``, the decoded
body as data); a scheduled rule fires the matching ``@app.schedule`` through
:func:`~overcast.runtime.dispatch.run_schedule`; anything else goes where the handler's
``routes`` send it (:class:`overcast.runtime.router.Router`), as an AWS event:

==============  ================================  ==================================
record          type                              source
==============  ================================  ==================================
SQS             ``aws.sqs.message``               the queue's ARN
SNS             ``aws.sns.Notification``          the topic's ARN
S3              ``aws.s3.<eventName>``            ``arn:aws:s3:::<bucket>``
DynamoDB        ``aws.dynamodb.<eventName>``      the stream's ARN
Kinesis         ``aws.kinesis.record``            the stream's ARN
EventBridge     its ``detail-type``               its ``source`` (AWS's own mapping)
==============  ================================  ==================================

Failures: an SQS, DynamoDB or Kinesis batch answers ``batchItemFailures`` (only the
records that failed come back; on FIFO queues and streams, the first failure and all
after it, to keep order), and SQS's redrive policy moves a message to the dead letters
after its attempts. An SNS, S3 or EventBridge invocation raises, so Lambda retries it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from ...errors import ConfigError, InvalidArgument
from ...handles import BucketHandle, QueueHandle, TopicHandle
from ...resources.queue import Message
from ...runtime.cloudevent import CloudEvent
from ...runtime.dispatch import Delivery, PlatformSettled, deliver, run_event, run_schedule
from ...runtime.router import Handler, Router, Target, UnroutedEvent

if TYPE_CHECKING:
    from ...app import App, EventRoute, ScheduledJob, Subscription

__all__ = ["EventRouter", "MalformedRecord", "UnroutedEvent", "to_cloudevents"]

log = logging.getLogger("overcast.aws.lambda")


class MalformedRecord(InvalidArgument):
    """A record its event source could not have sent (a field missing or of the wrong type)."""


# -- records to CloudEvents ----------------------------------------------------------------


def _event(
    type_: str,
    source: str,
    id_: str,
    data: Any,
    *,
    time: datetime | None,
    subject: str | None = None,
    datacontenttype: str | None = "application/json",
    extensions: Mapping[str, Any] | None = None,
    original: Any = None,
) -> CloudEvent:
    """An AWS record as a CloudEvent, checked against CloudEvents 1.0 (no time: now)."""
    return CloudEvent(
        type=type_,
        source=source,
        id=id_,
        data=data,
        time=time or datetime.now(UTC),
        subject=subject or None,
        datacontenttype=datacontenttype or None,
        extensions=dict(extensions or {}),
        original=original,
    ).checked()


def _decoded(text: str | None) -> Any:
    """A body as JSON when it is JSON, else the text itself."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise MalformedRecord(f"a record's message body is a {type(text).__name__}, not a string")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _content_type(data: Any) -> str:
    if isinstance(data, bytes):
        return "application/octet-stream"
    return "text/plain" if isinstance(data, str) else "application/json"


def _epoch(value: Any) -> datetime | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number > 1e11:  # milliseconds
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):  # out of datetime's range, or NaN
        return None


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _arn_name(arn: str) -> str:
    """The resource's name in an ARN: ``...:queue-name``, ``...:table/T/stream/...``, ``...:stream/S``."""
    resource = arn.split(":", 5)[-1]
    for prefix in ("table/", "stream/", "rule/"):
        if resource.startswith(prefix):
            return resource[len(prefix) :].split("/", 1)[0]
    return resource.rsplit("/", 1)[-1]


def _decode_name(name: str) -> str:
    """An attribute name as the app sent it (the SQS provider escapes names SQS refuses)."""
    if not name.startswith("ovc."):
        return name
    from .sqs import decode_attribute_name

    return decode_attribute_name(name)


def _sqs_attributes(record: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    given = record.get("messageAttributes")
    for name, attr in given.items() if isinstance(given, Mapping) else ():
        value = attr.get("stringValue") if isinstance(attr, Mapping) else None
        if isinstance(value, str):
            out[_decode_name(name)] = value
    return out


def _sns_envelope(body: str) -> dict[str, Any] | None:
    """The SNS notification an SQS body carries (a subscription without raw delivery), if any."""
    if not isinstance(body, str) or not body.startswith("{") or '"TopicArn"' not in body:
        return None
    try:
        envelope = json.loads(body)
    except ValueError:
        return None
    if isinstance(envelope, dict) and envelope.get("Type") == "Notification" and "Message" in envelope:
        return envelope
    return None


def _sns_attributes(sns: Mapping[str, Any]) -> dict[str, str]:
    given = sns.get("MessageAttributes")
    return {
        _decode_name(name): attr["Value"]
        for name, attr in (given.items() if isinstance(given, Mapping) else ())
        if isinstance(attr, dict) and attr.get("Type", "String") == "String" and isinstance(attr.get("Value"), str)
    }


def sqs_event(record: Mapping[str, Any]) -> CloudEvent:
    """An SQS record as an AWS CloudEvent (an SNS notification inside is unwrapped)."""
    attempts = _attempts(record)
    envelope = _sns_envelope(record.get("body") or "")
    if envelope is not None:
        return _sns_cloudevent(envelope, original=record, attempts=attempts)
    data = _decoded(record.get("body"))
    return _event(
        "aws.sqs.message",
        record.get("eventSourceARN") or "aws:sqs",
        record["messageId"],
        data,
        time=_epoch(_path(record, "attributes", "SentTimestamp")),
        datacontenttype=_content_type(data),
        extensions={"attempts": attempts},
        original=record,
    )


def _sns_cloudevent(sns: Mapping[str, Any], *, original: Any, attempts: int | None = None) -> CloudEvent:
    data = _decoded(sns.get("Message"))
    return _event(
        "aws.sns.Notification",
        sns.get("TopicArn") or "aws:sns",
        sns["MessageId"],
        data,
        time=_iso(sns.get("Timestamp")),
        subject=sns.get("Subject") or None,
        datacontenttype=_content_type(data),
        extensions=None if attempts is None else {"attempts": attempts},
        original=original,
    )


def sns_event(record: Mapping[str, Any]) -> CloudEvent:
    return _sns_cloudevent(record["Sns"], original=record)


def s3_event(record: Mapping[str, Any]) -> CloudEvent:
    s3 = record["s3"]
    bucket = s3["bucket"]["name"]
    obj = s3.get("object") or {}
    key = unquote_plus(obj.get("key", ""))
    marker = obj.get("sequencer") or (record.get("responseElements") or {}).get("x-amz-request-id") or ""
    return _event(
        f"aws.s3.{record.get('eventName', 'event')}",
        f"arn:aws:s3:::{bucket}",
        f"{bucket}/{key}@{marker or record.get('eventTime', '')}",
        s3,
        time=_iso(record.get("eventTime")),
        subject=key or None,
        original=record,
    )


def dynamodb_event(record: Mapping[str, Any]) -> CloudEvent:
    change = record.get("dynamodb") or {}
    return _event(
        f"aws.dynamodb.{record.get('eventName', 'event')}",
        record.get("eventSourceARN") or "aws:dynamodb",
        record.get("eventID") or str(change.get("SequenceNumber", "")),
        change,
        time=_epoch(change.get("ApproximateCreationDateTime")),
        original=record,
    )


def kinesis_event(record: Mapping[str, Any]) -> CloudEvent:
    kinesis = record["kinesis"]
    try:
        raw = base64.b64decode(kinesis.get("data", ""), validate=True)
    except (binascii.Error, ValueError):
        raw = str(kinesis.get("data", "")).encode()
    data: Any = raw
    with contextlib.suppress(ValueError):
        data = json.loads(raw)
    return _event(
        "aws.kinesis.record",
        record.get("eventSourceARN") or "aws:kinesis",
        record.get("eventID") or kinesis.get("sequenceNumber", ""),
        data,
        time=_epoch(kinesis.get("approximateArrivalTimestamp")),
        subject=kinesis.get("partitionKey") or None,
        datacontenttype=_content_type(data),
        original=record,
    )


def eventbridge_event(event: Mapping[str, Any]) -> CloudEvent:
    """AWS's own CloudEvents mapping: id, source, type = detail-type, time, data = detail."""
    resources = event.get("resources")
    resources = resources if isinstance(resources, list) else []
    return _event(
        str(event["detail-type"]),
        str(event["source"]),
        str(event.get("id") or ""),
        event.get("detail"),
        time=_iso(event.get("time")),
        subject=resources[0] if resources and isinstance(resources[0], str) else None,
        original=event,
    )


_RECORD_EVENTS: dict[str, Callable[[Mapping[str, Any]], CloudEvent]] = {
    "aws:sqs": sqs_event,
    "aws:sns": sns_event,
    "aws:s3": s3_event,
    "aws:dynamodb": dynamodb_event,
    "aws:kinesis": kinesis_event,
}


def _record_source(record: Mapping[str, Any]) -> str:
    return str(record.get("eventSource") or record.get("EventSource") or "")


def event_kind(event: Any) -> str:
    """``sqs``, ``sns``, ``s3``, ``dynamodb``, ``kinesis``, ``schedule``, ``eventbridge`` or ``unknown``."""
    if isinstance(event, dict):
        records = event.get("Records")
        if isinstance(records, list) and records:
            # the first record that says (one odd record does not make the batch unknown)
            for record in records:
                source = _record_source(record) if isinstance(record, dict) else ""
                if source in _RECORD_EVENTS:
                    return source.removeprefix("aws:")
            return "unknown"
        if "detail-type" in event and "source" in event:
            if event["source"] == "aws.events" and event["detail-type"] == "Scheduled Event":
                return "schedule"
            return "eventbridge"
    return "unknown"


def to_cloudevents(event: Mapping[str, Any]) -> list[CloudEvent]:
    """Every record of a Lambda event as an AWS CloudEvent (no app needed; for tests and tools)."""
    if "Records" in event:
        return [translated(_RECORD_EVENTS[_record_source(r)], r) for r in event["Records"]]
    return [translated(eventbridge_event, event)]


def _path(value: Any, *keys: str) -> Any:
    """``value[k1][k2]...``, or None where a step is missing or not an object."""
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def translated(convert: Callable[[Mapping[str, Any]], CloudEvent], record: Any) -> CloudEvent:
    """``convert(record)``; a record of the wrong shape is a :class:`MalformedRecord` naming its kind."""
    kind = convert.__name__.removesuffix("_event")
    if not isinstance(record, Mapping):
        raise MalformedRecord(f"a {kind} record is a {type(record).__name__}, not an object")
    try:
        return convert(record)
    except MalformedRecord:
        raise
    except (InvalidArgument, KeyError, TypeError, ValueError, AttributeError) as exc:  # checked() raises the first
        raise MalformedRecord(f"malformed {kind} record: {exc!r:.300}") from exc


# -- records to messages of the app's own queues and topics ------------------------------


def _attempts(record: Mapping[str, Any]) -> int:
    """``ApproximateReceiveCount`` (1 when it is missing or not a count)."""
    count = _path(record, "attributes", "ApproximateReceiveCount")
    try:
        return max(1, int(count)) if isinstance(count, int | str) else 1
    except ValueError:
        return 1


def _message_id(record: Any, key: str = "messageId") -> str | None:
    """A record's id (``messageId``, or ``key``) if it has a usable one: a non-empty string."""
    value = record.get(key) if isinstance(record, Mapping) else None
    return value if isinstance(value, str) and value else None


def _sqs_message(record: Mapping[str, Any]) -> Message:
    """An SQS record of one of the app's queues as the message its provider would receive."""
    message_id = _message_id(record)
    if message_id is None:
        raise MalformedRecord("an SQS record without a messageId")
    return Message(
        message_id,
        _decoded(record.get("body")),
        _sqs_attributes(record),
        _attempts(record),
        str(record.get("receiptHandle") or message_id),
    )


def _subscription_message(record: Mapping[str, Any]) -> Message:
    """An SQS record of a topic subscription's queue: the SNS notification inside, if any."""
    envelope = _sns_envelope(record.get("body") or "")
    if envelope is None:
        return _sqs_message(record)
    message = _sns_message(envelope)
    return Message(
        message.id, message.body, message.attributes, _attempts(record), str(record.get("receiptHandle") or message.id)
    )


def _sns_message(sns: Mapping[str, Any]) -> Message:
    message_id = _message_id(sns, "MessageId")
    if message_id is None:
        raise MalformedRecord("an SNS notification without a MessageId")
    return Message(message_id, _decoded(sns.get("Message")), _sns_attributes(sns), 1, message_id)


# -- routing -------------------------------------------------------------------------------


class EventRouter:
    """Finds the handler of each event and hands it over; built on the first non-HTTP event."""

    def __init__(self, app: App, routes: Mapping[str, str | Handler]) -> None:
        self.app = app
        # routes given to lambda_handler come first, then the app's @app.on("pattern") handlers
        declared = {r.source: r.handler for r in app.events if isinstance(r.source, str) and r.source not in routes}
        self.router = Router(app, {**routes, **declared}, owner="lambda_handler")
        self.routes = self.router.routes
        self._settled = PlatformSettled("memory://lambda-event-source", name="lambda-event-source")
        self._queues: dict[str, Subscription] | None = None
        self._subscription_queues: dict[str, Subscription] | None = None
        self._topics: dict[str, list[Subscription]] = {}

    # The app's queues and topics by their AWS names, resolved once from the target's URLs.
    def _index(self) -> dict[str, Subscription]:
        if self._queues is None:
            queues: dict[str, Subscription] = {}
            for sub in self.app.subscriptions:
                source = sub.source
                if isinstance(source, QueueHandle):
                    queues[_aws_name(source)] = sub
                elif isinstance(source, TopicHandle):
                    self._topics.setdefault(_aws_name(source), []).append(sub)
            self._queues = queues
        return self._queues

    def _subscription_queue(self, name: str) -> Subscription | None:
        """The topic subscription whose SQS queue is ``name`` (asks the topic's provider, once)."""
        if self._subscription_queues is None:
            self._subscription_queues = {
                _subscription_queue_name(sub): sub
                for sub in self.app.subscriptions
                if isinstance(sub.source, TopicHandle)
            }
        return self._subscription_queues.get(name)

    def kind_of(self, event: Any) -> str:
        return event_kind(event)

    async def handle(self, event: Any, context: Any) -> Any:
        kind = event_kind(event)
        if kind == "sqs":
            return await self._sqs(event["Records"])
        if kind in ("dynamodb", "kinesis"):
            return await self._stream(event["Records"], kind)
        if kind == "sns":
            await _all(self._sns(record) for record in event["Records"])
            return None
        if kind == "s3":
            await _all(self._s3(record) for record in event["Records"])
            return None
        if kind == "schedule":
            await self._schedule(event)
            return None
        if kind == "eventbridge":
            ce = translated(eventbridge_event, event)
            resources = event.get("resources")
            await self._routed(ce, ce.type, *(resources if isinstance(resources, list) else ()))
            return None
        raise UnroutedEvent(f"{self.app.name}: the Lambda handler does not know this event ({_described(event)})")

    async def _s3(self, record: Any) -> None:
        """A bucket notification: a ``routes`` entry first, else the app's ``@app.on(bucket)``."""
        event = translated(s3_event, record)
        found = _path(record, "s3", "bucket", "name")
        bucket = found if isinstance(found, str) else None
        if bucket is not None and self.router.match(event.source, bucket) is None:
            kind = _path(record, "eventName")
            route = declared_bucket_route(self.app, bucket, kind if isinstance(kind, str) else "", event.subject or "")
            if route is not None:
                _succeeded(await run_event(Target(route.name, route.handler), event))
                return
        await self._routed(event, bucket)

    async def _routed(self, event: CloudEvent, *names: str | None) -> None:
        """An event for a route: raise if nothing takes it or its handler failed (Lambda retries)."""
        target = self.router.match(event.source, *names)
        if target is None:
            what = f"no handler for {event.type} from {event.source}"
            raise self.router.unrouted(what, self.router.hint(event.source))
        _succeeded(await run_event(target, event))

    # -- SQS -----------------------------------------------------------------------------

    async def _sqs_delivery(self, record: Mapping[str, Any]) -> Delivery:
        arn = str(record.get("eventSourceARN") or "")
        name = _arn_name(arn)
        target = self.router.match(arn, name)
        if target is not None:
            return await run_event(target, translated(sqs_event, record))
        sub = self._index().get(name)
        if sub is not None:
            return await deliver(sub, self._settled, _sqs_message(record), app=self.app.name, original=record)
        sub = self._subscription_queue(name)
        if sub is not None:
            return await deliver(sub, self._settled, _subscription_message(record), app=self.app.name, original=record)
        raise self.router.unrouted(
            f"no subscription consumes SQS queue {name!r} ({arn})", "subscribe to it or " + self.router.hint(name)
        )

    async def _sqs_record(self, record: Any) -> bool:
        """Deliver one record; whether it succeeded (a failed one is listed in the batch response)."""
        try:
            if not isinstance(record, Mapping):
                raise MalformedRecord(f"an SQS record is a {type(record).__name__}, not an object")
            delivery = await self._sqs_delivery(record)
        except Exception as exc:  # unrouted or malformed: it comes back, then goes to the DLQ
            log.warning(
                "SQS message %s from %s failed: %r",
                _message_id(record),
                _path(record, "eventSourceARN"),
                exc,
                exc_info=exc,
            )
            return False
        return delivery.error is None

    async def _sqs(self, records: list[Any]) -> dict[str, Any]:
        failed: list[Any] = []
        if any(str(_path(r, "eventSourceARN") or "").endswith(".fifo") for r in records):
            # FIFO: after a failure, later messages must not overtake it; give them all back.
            for i, record in enumerate(records):
                if not await self._sqs_record(record):
                    failed = records[i:]
                    break
        else:
            outcomes = await asyncio.gather(*(self._sqs_record(r) for r in records))
            failed = [r for r, ok in zip(records, outcomes, strict=True) if not ok]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in _failure_ids(failed)]}

    # -- streams -------------------------------------------------------------------------

    async def _stream(self, records: list[dict[str, Any]], kind: str) -> dict[str, Any]:
        """Records in order; the first failure stops the batch (Lambda resumes from it)."""
        for i, record in enumerate(records):
            if await self._stream_record(record, kind):
                continue
            sequence = _path(
                record, *(("dynamodb", "SequenceNumber") if kind == "dynamodb" else ("kinesis", "sequenceNumber"))
            )
            if isinstance(sequence, str) and sequence:
                return {"batchItemFailures": [{"itemIdentifier": sequence}]}
            # Lambda resumes a stream from a sequence number: one it cannot be given fails the batch whole
            log.error("%s record #%d failed and has no sequence number to resume from: skipped", kind, i)
        return {"batchItemFailures": []}

    async def _stream_record(self, record: Any, kind: str) -> bool:
        arn = str(_path(record, "eventSourceARN") or "")
        try:
            event = translated(dynamodb_event if kind == "dynamodb" else kinesis_event, record)
            target = self.router.match(arn, _arn_name(arn))
            if target is None:
                raise self.router.unrouted(f"no handler for {kind} stream {arn}", self.router.hint(_arn_name(arn)))
        except Exception as exc:
            log.warning("%s record from %s failed: %r", kind, arn, exc, exc_info=exc)
            return False
        return (await run_event(target, event)).error is None

    # -- SNS -----------------------------------------------------------------------------

    async def _sns(self, record: Any) -> None:
        sns = _path(record, "Sns")
        if not isinstance(sns, Mapping):
            raise MalformedRecord("an SNS record without its 'Sns' object")
        arn = str(sns.get("TopicArn") or "")
        name = _arn_name(arn)
        target = self.router.match(arn, name)
        if target is not None:
            _succeeded(await run_event(target, translated(sns_event, record)))
            return
        self._index()
        subs = self._topics.get(name)
        if not subs:
            raise self.router.unrouted(
                f"no subscription on SNS topic {name!r} ({arn})", "subscribe to it or " + self.router.hint(name)
            )
        message = _sns_message(sns)
        deliveries = await asyncio.gather(
            *(deliver(sub, self._settled, message, app=self.app.name, original=record) for sub in subs)
        )
        for delivery in deliveries:
            _succeeded(delivery)

    # -- schedules -----------------------------------------------------------------------

    async def _schedule(self, event: Mapping[str, Any]) -> None:
        given = event.get("resources")
        rules = [r for r in given if isinstance(r, str)] if isinstance(given, list) else []
        names = [_arn_name(r) for r in rules]
        target = self.router.match(*rules, *names)
        ce = translated(eventbridge_event, event)
        if target is not None:
            _succeeded(await run_event(target, ce))
            return
        job = _schedule_for(self.app.schedules, names, self.app.name)
        if job is None:
            raise self.router.unrouted(
                f"no schedule matches rule {', '.join(names) or '(none)'}",
                f"name the rule after the schedule ('{self.app.name}-<schedule>') or "
                + self.router.hint("RULE", "schedule"),
            )
        _succeeded(await run_schedule(job, app=self.app.name, at=ce.time, original=event))


async def _all(jobs: Iterable[Any]) -> None:
    """Run every delivery; if any failed, raise the first error (Lambda retries the invocation)."""
    results = await asyncio.gather(*jobs, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]


def _described(event: Any) -> str:
    """What an unknown event is, for its error: its records' sources, else its keys, else its type."""
    if not isinstance(event, dict):
        return type(event).__name__
    records = event.get("Records")
    if isinstance(records, list) and records:
        sources = sorted({_record_source(r) if isinstance(r, dict) else type(r).__name__ for r in records})
        return f"records from {', '.join(s or '(no eventSource)' for s in sources)[:200]}"
    return f"keys: {', '.join(sorted(str(k) for k in event))[:200]}"


def _failure_ids(records: list[Any]) -> list[str]:
    """The ``messageId`` of each failed record; one without (never from SQS itself) is logged and left out,
    since Lambda fails a whole batch whose response names an empty or unknown id."""
    ids = []
    for record in records:
        message_id = _message_id(record)
        if message_id is None:
            log.error("an SQS record without a messageId failed; it cannot be given back alone: %.200r", record)
        else:
            ids.append(message_id)
    return ids


def _succeeded(delivery: Delivery) -> None:
    """Raise what the handler raised, so Lambda retries the invocation."""
    if delivery.error is not None:
        raise delivery.error


def _schedule_for(jobs: list[ScheduledJob], rules: list[str], app: str) -> ScheduledJob | None:
    """The schedule a rule fires: named ``<schedule>``, ``<app>-<schedule>``, or any ``...-<schedule>``."""
    for rule in rules:
        for job in jobs:
            if rule in (job.name, f"{app}-{job.name}"):
                return job
    best: ScheduledJob | None = None
    for rule in rules:
        for job in jobs:
            if rule.endswith(f"-{job.name}") and (best is None or len(job.name) > len(best.name)):
                best = job
    return best


def _aws_name(handle: QueueHandle | TopicHandle) -> str:
    """The SQS queue or SNS topic name a handle resolves to (its declared name off AWS)."""
    try:
        url = handle.resolved_url()
    except ConfigError:
        return handle.resource_name
    if url.scheme in ("sqs", "sns") and url.host:
        return _arn_name(url.host) if url.host.startswith("arn:") else url.host.rsplit("/", 1)[-1]
    return handle.resource_name


def _subscription_queue_name(sub: Subscription) -> str:
    """The SQS queue behind a topic subscription, as the topic's provider names it."""
    topic = sub.source
    fallback = f"{topic.resource_name}-{sub.name}"
    try:
        queue = topic.subscription(sub.name, max_attempts=sub.max_attempts)  # type: ignore[union-attr]
    except (ConfigError, NotImplementedError):
        return fallback
    location = getattr(queue, "location", None)
    if location is not None and location.scheme == "sqs" and location.host:
        return str(location.host).rsplit("/", 1)[-1]
    return fallback


#: S3 event names (``ObjectCreated:Put``) by the kind ``@app.on(bucket, events=...)`` names
_S3_KINDS = {"created": "ObjectCreated:", "deleted": "ObjectRemoved:"}


def declared_bucket_route(app: App, bucket: str, event_name: str, key: str) -> EventRoute | None:
    """The app's ``@app.on(bucket)`` handler for this S3 event: its bucket, kind and key prefix."""
    for route in app.events:
        source = route.source
        if not isinstance(source, BucketHandle) or _aws_bucket(source) != bucket or not key.startswith(route.prefix):
            continue
        if any(event_name.startswith(_S3_KINDS[kind]) for kind in route.events):
            return route
    return None


def _aws_bucket(handle: BucketHandle) -> str:
    """The S3 bucket a handle resolves to (its declared name off AWS)."""
    try:
        url = handle.resolved_url()
    except ConfigError:
        return handle.resource_name
    return url.host if url.scheme == "s3" and url.host else handle.resource_name
