"""Non-HTTP Lambda events as CloudEvents 1.0, delivered to the app's handlers.

Each record of an SQS, SNS, S3, DynamoDB-stream or Kinesis event, and each EventBridge
event, becomes one :class:`~overcast.CloudEvent` whose ``original`` is the record as
Lambda gave it. A record from one of the app's own queues or topics (or a topic's
subscription queue) becomes exactly the event the app gets everywhere else
(``overcast.queue.message`` / ``overcast.topic.message``, the decoded body as data); a
scheduled rule fires the matching ``@app.schedule``; anything else goes where the
handler's ``routes`` send it, as an AWS event built with the ``cloudevents`` SDK:

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
after it, to keep order). An SNS, S3 or EventBridge invocation raises, so Lambda retries it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import inspect
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from cloudevents.core.v1.event import CloudEvent as SDKCloudEvent

from ...errors import ConfigError
from ...handles import QueueHandle, TopicHandle
from ...resources.queue import Message
from ...runtime.cloudevent import CloudEvent
from ...runtime.dispatch import call_handler, message_event, schedule_event

if TYPE_CHECKING:
    from ...app import App, ScheduledJob, Subscription

__all__ = ["EventRouter", "UnroutedEvent", "to_cloudevents"]

log = logging.getLogger("overcast.aws.lambda")

Handler = Callable[..., Any]


class UnroutedEvent(ConfigError):
    """An event no subscription, schedule or route claims."""


@dataclass(frozen=True)
class _Target:
    """Where one event goes: a handler, and whether it takes the event (schedules may not)."""

    name: str
    handler: Handler
    takes_event: bool = True

    async def run(self, event: CloudEvent) -> None:
        await call_handler(self.handler, event if self.takes_event else None)


def _takes_event(handler: Handler) -> bool:
    try:
        params = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params)


# -- records to CloudEvents ----------------------------------------------------------------


def _sdk_event(
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
    """Build the event through the ``cloudevents`` SDK (which validates it) and return ours."""
    attributes: dict[str, Any] = {"type": type_, "source": source, "id": id_, "specversion": "1.0"}
    if time is not None:
        attributes["time"] = time
    if subject:
        attributes["subject"] = subject
    if datacontenttype:
        attributes["datacontenttype"] = datacontenttype
    if extensions:
        attributes.update(extensions)
    return CloudEvent.from_sdk(SDKCloudEvent(attributes, data), original=original)


def _decoded(text: str | None) -> Any:
    """A body as JSON when it is JSON, else the text itself."""
    if text is None:
        return None
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
    return datetime.fromtimestamp(number, UTC)


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
    for name, attr in (record.get("messageAttributes") or {}).items():
        value = attr.get("stringValue")
        if isinstance(value, str):
            out[_decode_name(name)] = value
    return out


def _sns_envelope(body: str) -> dict[str, Any] | None:
    """The SNS notification an SQS body carries (a subscription without raw delivery), if any."""
    if not body.startswith("{") or '"TopicArn"' not in body:
        return None
    try:
        envelope = json.loads(body)
    except ValueError:
        return None
    if isinstance(envelope, dict) and envelope.get("Type") == "Notification" and "Message" in envelope:
        return envelope
    return None


def _sns_attributes(sns: Mapping[str, Any]) -> dict[str, str]:
    return {
        _decode_name(name): attr["Value"]
        for name, attr in (sns.get("MessageAttributes") or {}).items()
        if isinstance(attr, dict) and attr.get("Type", "String") == "String" and isinstance(attr.get("Value"), str)
    }


def sqs_event(record: Mapping[str, Any]) -> CloudEvent:
    """An SQS record as an AWS CloudEvent (an SNS notification inside is unwrapped)."""
    attempts = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1") or 1)
    envelope = _sns_envelope(record.get("body") or "")
    if envelope is not None:
        return _sns_cloudevent(envelope, original=record, attempts=attempts)
    data = _decoded(record.get("body"))
    return _sdk_event(
        "aws.sqs.message",
        record.get("eventSourceARN") or "aws:sqs",
        record["messageId"],
        data,
        time=_epoch(record.get("attributes", {}).get("SentTimestamp")),
        datacontenttype=_content_type(data),
        extensions={"attempts": attempts},
        original=record,
    )


def _sns_cloudevent(sns: Mapping[str, Any], *, original: Any, attempts: int | None = None) -> CloudEvent:
    data = _decoded(sns.get("Message"))
    return _sdk_event(
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
    return _sdk_event(
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
    return _sdk_event(
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
    return _sdk_event(
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
    resources = event.get("resources") or []
    return _sdk_event(
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
        if isinstance(records, list) and records and isinstance(records[0], dict):
            return _record_source(records[0]).removeprefix("aws:") or "unknown"
        if "detail-type" in event and "source" in event:
            if event["source"] == "aws.events" and event["detail-type"] == "Scheduled Event":
                return "schedule"
            return "eventbridge"
    return "unknown"


def to_cloudevents(event: Mapping[str, Any]) -> list[CloudEvent]:
    """Every record of a Lambda event as an AWS CloudEvent (no app needed; for tests and tools)."""
    if "Records" in event:
        return [_RECORD_EVENTS[_record_source(r)](r) for r in event["Records"]]
    return [eventbridge_event(event)]


# -- routing -------------------------------------------------------------------------------


class EventRouter:
    """Finds the handler of each event and runs it; built on the first non-HTTP event."""

    def __init__(self, app: App, routes: Mapping[str, str | Handler]) -> None:
        self.app = app
        self.routes: list[tuple[str, _Target]] = [
            (pattern, self._target(pattern, to)) for pattern, to in routes.items()
        ]
        self._queues: dict[str, Subscription] | None = None
        self._subscription_queues: dict[str, Subscription] | None = None
        self._topics: dict[str, list[Subscription]] = {}

    def _target(self, pattern: str, to: str | Handler) -> _Target:
        if callable(to):
            return _Target(getattr(to, "__name__", repr(to)), to)
        for sub in self.app.subscriptions:
            if sub.name == to:
                return _Target(sub.name, sub.handler)
        for job in self.app.schedules:
            if job.name == to:
                return _Target(job.name, job.handler, _takes_event(job.handler))
        names = [s.name for s in self.app.subscriptions] + [j.name for j in self.app.schedules]
        raise ConfigError(
            f"lambda_handler routes: {pattern!r} -> {to!r} names no subscription or schedule of {self.app.name!r} "
            f"(there are: {', '.join(names) or 'none'})"
        )

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

    def _route(self, *names: str | None) -> _Target | None:
        for pattern, target in self.routes:
            for name in names:
                if name and fnmatchcase(name, pattern):
                    return target
        return None

    def kind_of(self, event: Any) -> str:
        return event_kind(event)

    async def handle(self, event: Any, context: Any) -> Any:
        kind = event_kind(event)
        if kind == "sqs":
            return await self._sqs(event["Records"])
        if kind in ("dynamodb", "kinesis"):
            return await self._stream(event["Records"], kind)
        if kind == "sns":
            await self._all([self._sns(record) for record in event["Records"]])
            return None
        if kind == "s3":
            await self._all([self._direct(s3_event(r), r["s3"]["bucket"]["name"]) for r in event["Records"]])
            return None
        if kind == "schedule":
            await self._schedule(event)
            return None
        if kind == "eventbridge":
            ce = eventbridge_event(event)
            await self._direct(ce, ce.type, *(event.get("resources") or []))
            return None
        raise UnroutedEvent(
            f"{self.app.name}: the Lambda handler does not know this event "
            f"(keys: {', '.join(sorted(event)) if isinstance(event, dict) else type(event).__name__})"
        )

    @staticmethod
    async def _all(jobs: list[Any]) -> None:
        """Run every delivery; if any failed, raise the first error (Lambda retries the invocation)."""
        results = await asyncio.gather(*jobs, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def _direct(self, event: CloudEvent, *names: str | None) -> None:
        target = self._route(event.source, *names)
        if target is None:
            raise UnroutedEvent(
                f"{self.app.name}: no handler for {event.type} from {event.source}; "
                f"add lambda_handler(app, routes={{{event.source!r}: 'handler_name'}})"
            )
        await self._run(target, event)

    async def _run(self, target: _Target, event: CloudEvent) -> None:
        try:
            await target.run(event)
        except Exception as exc:
            log.warning("%s failed on %s %s: %r", target.name, event.type, event.id, exc, exc_info=exc)
            raise

    # -- SQS -----------------------------------------------------------------------------

    def _sqs_delivery(self, record: Mapping[str, Any]) -> tuple[_Target, CloudEvent]:
        arn = str(record.get("eventSourceARN") or "")
        name = _arn_name(arn)
        target = self._route(arn, name)
        if target is not None:
            return target, sqs_event(record)
        queues = self._index()
        attempts = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1") or 1)
        sub = queues.get(name)
        if sub is not None:
            message = Message(
                record["messageId"],
                _decoded(record.get("body")),
                _sqs_attributes(record),
                attempts,
                record.get("receiptHandle", ""),
            )
            event = message_event(message, app=self.app.name, kind="queue", resource=sub.source.resource_name)
            return _Target(sub.name, sub.handler), replace(event, original=record)
        sub = self._subscription_queue(name)
        if sub is not None:
            body = record.get("body") or ""
            envelope = _sns_envelope(body)
            if envelope is not None:
                message = Message(
                    envelope["MessageId"],
                    _decoded(envelope["Message"]),
                    _sns_attributes(envelope),
                    attempts,
                    record.get("receiptHandle", ""),
                )
            else:
                message = Message(
                    record["messageId"],
                    _decoded(body),
                    _sqs_attributes(record),
                    attempts,
                    record.get("receiptHandle", ""),
                )
            event = message_event(
                message, app=self.app.name, kind="topic", resource=sub.source.resource_name, subscription=sub.name
            )
            return _Target(sub.name, sub.handler), replace(event, original=record)
        raise UnroutedEvent(
            f"{self.app.name}: no subscription consumes SQS queue {name!r} ({arn}); "
            f"subscribe to it or add lambda_handler(app, routes={{{name!r}: 'handler_name'}})"
        )

    async def _sqs_record(self, record: Mapping[str, Any]) -> bool:
        try:
            target, event = self._sqs_delivery(record)
            await target.run(event)
        except Exception as exc:
            log.warning(
                "SQS message %s from %s failed: %r",
                record.get("messageId"),
                record.get("eventSourceARN"),
                exc,
                exc_info=exc,
            )
            return False
        return True

    async def _sqs(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        failed: list[str] = []
        if any(str(r.get("eventSourceARN", "")).endswith(".fifo") for r in records):
            # FIFO: after a failure, later messages must not overtake it; give them all back.
            for i, record in enumerate(records):
                if not await self._sqs_record(record):
                    failed.extend(str(r["messageId"]) for r in records[i:])
                    break
        else:
            outcomes = await asyncio.gather(*(self._sqs_record(r) for r in records))
            failed = [str(r["messageId"]) for r, ok in zip(records, outcomes, strict=True) if not ok]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    # -- streams -------------------------------------------------------------------------

    async def _stream(self, records: list[dict[str, Any]], kind: str) -> dict[str, Any]:
        """Records in order; the first failure stops the batch (Lambda resumes from it)."""
        convert = dynamodb_event if kind == "dynamodb" else kinesis_event
        for record in records:
            arn = str(record.get("eventSourceARN") or "")
            sequence = (
                (record.get("dynamodb") or {}).get("SequenceNumber")
                if kind == "dynamodb"
                else ((record.get("kinesis") or {}).get("sequenceNumber"))
            )
            try:
                event = convert(record)
                target = self._route(arn, _arn_name(arn))
                if target is None:
                    raise UnroutedEvent(
                        f"{self.app.name}: no handler for {kind} stream {arn}; "
                        f"add lambda_handler(app, routes={{{_arn_name(arn)!r}: 'handler_name'}})"
                    )
                await target.run(event)
            except Exception as exc:
                log.warning("%s record %s from %s failed: %r", kind, sequence, arn, exc, exc_info=exc)
                return {"batchItemFailures": [{"itemIdentifier": str(sequence or "")}]}
        return {"batchItemFailures": []}

    # -- SNS -----------------------------------------------------------------------------

    async def _sns(self, record: Mapping[str, Any]) -> None:
        sns = record["Sns"]
        arn = str(sns.get("TopicArn") or "")
        name = _arn_name(arn)
        target = self._route(arn, name)
        if target is not None:
            await self._run(target, sns_event(record))
            return
        self._index()
        subs = self._topics.get(name)
        if not subs:
            raise UnroutedEvent(
                f"{self.app.name}: no subscription on SNS topic {name!r} ({arn}); "
                f"subscribe to it or add lambda_handler(app, routes={{{name!r}: 'handler_name'}})"
            )
        message = Message(sns["MessageId"], _decoded(sns.get("Message")), _sns_attributes(sns), 1, "")
        jobs = []
        for sub in subs:
            event = message_event(
                message, app=self.app.name, kind="topic", resource=sub.source.resource_name, subscription=sub.name
            )
            jobs.append(self._run(_Target(sub.name, sub.handler), replace(event, original=record)))
        await self._all(jobs)

    # -- schedules -----------------------------------------------------------------------

    async def _schedule(self, event: Mapping[str, Any]) -> None:
        rules = [r for r in event.get("resources") or [] if isinstance(r, str)]
        names = [_arn_name(r) for r in rules]
        target = self._route(*rules, *names)
        ce = eventbridge_event(event)
        if target is not None:
            await self._run(target, ce)
            return
        job = _schedule_for(self.app.schedules, names, self.app.name)
        if job is None:
            raise UnroutedEvent(
                f"{self.app.name}: no schedule matches rule {', '.join(names) or '(none)'}; name the rule after "
                f"the schedule ('{self.app.name}-<schedule>') or add lambda_handler(app, routes={{'RULE': 'schedule'}})"
            )
        fired = schedule_event(job, app=self.app.name, at=ce.time)
        await self._run(_Target(job.name, job.handler, _takes_event(job.handler)), replace(fired, original=event))


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
