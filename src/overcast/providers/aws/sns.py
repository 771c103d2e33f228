"""SNS topics fanning out to SQS queues: ``sns://TOPIC?region=…``.

``topic.subscription(name)`` is an SQS queue named ``TOPIC-NAME`` (names SQS would refuse
are shortened and given a hash), with its own dead-letter queue after ``max_attempts``
deliveries. Its ``create()`` makes the queue, lets the topic send to it (a queue policy)
and subscribes it to the topic. Delivery keeps SNS's JSON envelope (not raw delivery),
which the subscription unwraps, so a message's id is the one ``publish`` returned and its
attributes are those published.

A ``.fifo`` topic is an :class:`SNSFifoTopic`: SNS passes each message's group and
deduplication ids on to its subscriptions, FIFO queues (dead letters in FIFO queues too),
which keep order within a group and have no per-message ``delay``. The topic's options
``group``, ``group_by``, ``dedup_by`` and ``deduplication`` choose the ids as those of a
FIFO queue do (:class:`~overcast.providers.aws.sqs.FifoIds`; by default one group,
``default``, and a fresh deduplication id per publish).

URL options: ``region``, ``endpoint``, ``account`` (a topic of another account); the FIFO
options above; ``visibility_timeout`` (seconds), given to every subscription's queue (at
least the consuming function's timeout on Lambda).

IAM: ``sns:Publish`` on the topic; ``sns:CreateTopic`` and ``sns:Subscribe`` (and the
SQS actions of :mod:`.sqs`, with ``sqs:SetQueueAttributes``) for ``create()``.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, ClassVar

from ...errors import ConfigError, ProviderError
from ...resources.queue import Queue, Topic
from ...resources.url import ResourceURL
from ._client import aws_error, client, region_of
from .arns import partition_of
from .sqs import FifoIds, SQSFifoQueue, SQSQueue, encode_attribute_name, fifo_options_error

__all__ = ["SNSFifoSubscription", "SNSFifoTopic", "SNSSubscription", "SNSTopic"]

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_SAFE = re.compile(r"[^A-Za-z0-9_-]")



def subscription_queue_policy(queue_arn: Any, topic_arn: Any) -> dict[str, Any]:
    """The queue policy that lets the topic (only it) send to a subscription's queue: what
    ``create()`` sets and what the deploy plan declares, ARNs or Terraform references alike."""
    return {
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

class SNSTopic(Topic):
    """An SNS topic. Capabilities: ``dead_letter``, ``multiprocess`` (of its subscriptions).
    Opening a ``.fifo`` name gives an :class:`SNSFifoTopic`."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"dead_letter", "multiprocess"})
    offload: ClassVar[bool] = True
    fifo: ClassVar[bool] = False

    def __new__(cls, url: ResourceURL | str | None = None, *, name: str | None = None) -> SNSTopic:
        if cls is SNSTopic and url is not None:
            host = (ResourceURL.parse(url) if isinstance(url, str) else url).host
            if host.endswith(".fifo"):
                return super().__new__(SNSFifoTopic)
        return super().__new__(cls)

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self.topic_name = self.location.host
        base = self.topic_name[:-5] if self.fifo else self.topic_name
        if self.fifo != self.topic_name.endswith(".fifo") or not _TOPIC_NAME.match(base):
            raise ConfigError(
                f"{self.name}: SNS topic name {self.topic_name!r} in {self.location} must be 1-256 letters, "
                "digits, '-' or '_' (with '.fifo' at the end for a FIFO topic)"
            )
        what = f"{self.name}: SNS topic {self.topic_name}"
        self.fifo_ids = FifoIds(self.location, what) if self.fifo else None
        if self.fifo_ids is None:
            fifo_options_error(self.location, what, "topics")
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
        """The topic's ARN: from ``create()``, else built from the option ``account`` (a topic
        of another account) or the account of the credentials."""
        if self._arn is not None:
            return self._arn
        region = region_of(self.location)
        prefix = f"arn:{partition_of(region)}:sns:{region}"  # aws-cn, aws-us-gov: the region's partition
        account = self.location.option("account")
        if not account:
            try:
                account = client("sts", self.location).get_caller_identity()["Account"]
            except Exception as exc:
                raise self._error(exc) from exc
        self._arn = f"{prefix}:{account}:{self.topic_name}"
        return self._arn

    def _create_blocking(self) -> None:
        attributes: dict[str, str] = {}
        if self.fifo_ids is not None:
            content = "true" if self.fifo_ids.content else "false"
            attributes = {"FifoTopic": "true", "ContentBasedDeduplication": content}
        try:
            self._arn = str(self.client.create_topic(Name=self.topic_name, Attributes=attributes)["TopicArn"])
        except Exception as exc:
            raise self._error(exc) from exc

    def _ping_blocking(self) -> None:
        arn = self.topic_arn()  # raises its own mapped error: not wrapped a second time
        try:
            self.client.get_topic_attributes(TopicArn=arn)
        except Exception as exc:
            raise self._error(exc) from exc

    def _publish_blocking(self, data: bytes, attributes: dict[str, str]) -> str:
        request: dict[str, Any] = {"TopicArn": self.topic_arn(), "Message": data.decode()}
        if attributes:
            request["MessageAttributes"] = {
                encode_attribute_name(k): {"DataType": "String", "StringValue": v} for k, v in attributes.items()
            }
        if self.fifo_ids is not None:
            request.update(self.fifo_ids.request(attributes))
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
        shared = ("region", "endpoint", "visibility_timeout")
        options = {k: v for k, v in self.location.options.items() if k in shared}
        options["envelope"] = "sns"
        if max_attempts is not None:
            options["max_attempts"] = str(max_attempts)
        url = ResourceURL("sqs", self.subscription_queue_name(name), "", options)
        cls = SNSFifoSubscription if self.fifo else SNSSubscription
        return cls(self, url, name=f"{self.name}/{name}")


class SNSFifoTopic(SNSTopic):
    """An SNS FIFO topic (a ``.fifo`` name), fanning out to FIFO queues.
    Capabilities: ``dead_letter``, ``fifo``, ``multiprocess``."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"dead_letter", "fifo", "multiprocess"})
    fifo: ClassVar[bool] = True


class SNSSubscription(SQSQueue):
    """The SQS queue behind one subscription of an :class:`SNSTopic`."""

    def __new__(cls, topic: SNSTopic, url: ResourceURL | str | None = None, *, name: str | None = None) -> Any:
        return object.__new__(cls)

    def __init__(self, topic: SNSTopic, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self.topic = topic

    def _create_blocking(self) -> None:
        super()._create_blocking()
        topic_arn = self.topic.topic_arn()
        try:
            queue_arn = self.client.get_queue_attributes(QueueUrl=self.queue_url(), AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            policy = subscription_queue_policy(queue_arn, topic_arn)
            self.client.set_queue_attributes(QueueUrl=self.queue_url(), Attributes={"Policy": json.dumps(policy)})
            self.topic.client.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        except Exception as exc:
            raise self._error(exc) from exc


class SNSFifoSubscription(SNSSubscription):
    """The SQS FIFO queue behind one subscription of an :class:`SNSFifoTopic`; like any FIFO
    queue, it has no per-message ``delay``."""

    capabilities: ClassVar[frozenset[str]] = SQSFifoQueue.capabilities
    fifo: ClassVar[bool] = True
