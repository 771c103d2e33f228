"""SNS topics fanning out to SQS queues: ``sns://TOPIC?region=…``.

``topic.subscription(name)`` is an SQS queue named ``TOPIC-NAME`` (names SQS would refuse
are shortened and given a hash), with its own dead-letter queue after ``max_attempts``
deliveries. Its ``create()`` makes the queue, lets the topic send to it (a queue policy)
and subscribes it to the topic. Delivery keeps SNS's JSON envelope (not raw delivery),
which the subscription unwraps, so a message's id is the one ``publish`` returned and its
attributes are those published.

A ``.fifo`` topic is a FIFO topic; its subscriptions are FIFO queues and every message
goes to the message group ``default``.

URL options: ``region``, ``endpoint``.

IAM: ``sns:Publish`` on the topic; ``sns:CreateTopic`` and ``sns:Subscribe`` (and the
SQS actions of :mod:`.sqs`, with ``sqs:SetQueueAttributes``) for ``create()``.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any, ClassVar

from ...errors import ConfigError, ProviderError
from ...resources.queue import Queue, Topic
from ...resources.url import ResourceURL
from ._client import aws_error, client, region_of
from .sqs import SQSQueue, encode_attribute_name

__all__ = ["SNSSubscription", "SNSTopic"]

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


class SNSTopic(Topic):
    """An SNS topic. Capabilities: ``dead_letter``, ``multiprocess`` (of its subscriptions)."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"dead_letter", "multiprocess"})
    offload: ClassVar[bool] = True

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self.topic_name = self.location.host
        self.fifo = self.topic_name.endswith(".fifo")
        base = self.topic_name[:-5] if self.fifo else self.topic_name
        if not _TOPIC_NAME.match(base):
            raise ConfigError(
                f"{self.name}: SNS topic name {self.topic_name!r} in {self.location} must be 1-256 letters, "
                "digits, '-' or '_' (with '.fifo' at the end for a FIFO topic)"
            )
        self._client: Any = None
        self._arn: str | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client("sns", self.location)
        return self._client

    def _error(self, exc: Exception) -> ProviderError:
        return aws_error(exc, f"{self.name}: SNS topic {self.topic_name}", resource=self.name)

    def topic_arn(self) -> str:
        """The topic's ARN: from ``create()``, else built from the account of the credentials."""
        if self._arn is None:
            try:
                account = client("sts", self.location).get_caller_identity()["Account"]
            except Exception as exc:
                raise self._error(exc) from exc
            self._arn = f"arn:aws:sns:{region_of(self.location)}:{account}:{self.topic_name}"
        return self._arn

    def _create_blocking(self) -> None:
        attributes = {"FifoTopic": "true", "ContentBasedDeduplication": "false"} if self.fifo else {}
        try:
            self._arn = str(self.client.create_topic(Name=self.topic_name, Attributes=attributes)["TopicArn"])
        except Exception as exc:
            raise self._error(exc) from exc

    def _ping_blocking(self) -> None:
        try:
            self.client.get_topic_attributes(TopicArn=self.topic_arn())
        except Exception as exc:
            raise self._error(exc) from exc

    def _publish_blocking(self, data: bytes, attributes: dict[str, str]) -> str:
        request: dict[str, Any] = {"TopicArn": self.topic_arn(), "Message": data.decode()}
        if attributes:
            request["MessageAttributes"] = {
                encode_attribute_name(k): {"DataType": "String", "StringValue": v} for k, v in attributes.items()
            }
        if self.fifo:
            request["MessageGroupId"] = "default"
            request["MessageDeduplicationId"] = uuid.uuid4().hex
        try:
            return str(self.client.publish(**request)["MessageId"])
        except Exception as exc:
            raise self._error(exc) from exc

    def subscription_queue_name(self, name: str) -> str:
        base = self.topic_name[:-5] if self.fifo else self.topic_name
        wanted = f"{base}-{name}"
        suffix = ".fifo" if self.fifo else ""
        room = 80 - 4 - len(suffix)  # the dead-letter queue adds "-dlq"
        if _SAFE.search(wanted) or len(wanted) > room:
            digest = hashlib.sha256(name.encode()).hexdigest()[:10]
            wanted = f"{_SAFE.sub('_', wanted)[: room - 11]}-{digest}"
        return wanted + suffix

    def _subscription(self, name: str, max_attempts: int | None) -> Queue:
        options = {k: v for k, v in self.location.options.items() if k in ("region", "endpoint")}
        options["envelope"] = "sns"
        if max_attempts is not None:
            options["max_attempts"] = str(max_attempts)
        url = ResourceURL("sqs", self.subscription_queue_name(name), "", options)
        return SNSSubscription(self, url, name=f"{self.name}/{name}")


class SNSSubscription(SQSQueue):
    """The SQS queue behind one subscription of an :class:`SNSTopic`."""

    def __new__(cls, topic: SNSTopic, url: ResourceURL | str | None = None, *, name: str | None = None) -> Any:
        return object.__new__(cls)

    def __init__(self, topic: SNSTopic, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        self.fifo = topic.fifo  # type: ignore[misc]
        super().__init__(url, name=name)
        self.topic = topic

    def _create_blocking(self) -> None:
        super()._create_blocking()
        topic_arn = self.topic.topic_arn()
        try:
            queue_arn = self.client.get_queue_attributes(QueueUrl=self.queue_url(), AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            policy = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "sns.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": queue_arn,
                        "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                    }
                ],
            }
            self.client.set_queue_attributes(QueueUrl=self.queue_url(), Attributes={"Policy": json.dumps(policy)})
            self.topic.client.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        except Exception as exc:
            raise self._error(exc) from exc
