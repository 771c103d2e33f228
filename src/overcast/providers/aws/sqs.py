"""SQS queues, standard and FIFO: ``sqs://QUEUE?region=…`` and ``sqs://QUEUE.fifo``.

``create()`` makes the queue and its dead-letter queue (``QUEUE-dlq``, or
``QUEUE-dlq.fifo``) and links them with a redrive policy whose ``maxReceiveCount`` is
``max_attempts``: SQS itself moves a message received that many times without a delete.
``dead_letters()`` follows the queue's redrive policy, so queues made elsewhere
(Terraform) work too. Receiving asks for ``ApproximateReceiveCount`` (``attempts``);
``ack`` deletes, ``nack`` changes the visibility timeout. SQS counts delays and
timeouts in whole seconds, so fractions are rounded up, and long polls in whole seconds
(rounded down).

FIFO queues deliver in order within a message group, and SQS locks a group while any of
its messages is in flight. A message's group is the value of its attribute named by the
option ``group_by``, when given and present; else the option ``group`` (default
``default``: one ordered stream, as SQS does); ``group=*`` gives each message its own
group, trading order for parallel consumers. Deduplication: by default each send carries
a fresh deduplication id, so two sends of the same body are two messages (and botocore's
retries of one send reuse its id, so SQS drops a duplicate a retry would make);
``dedup_by=ATTR`` takes the id from that attribute (an idempotency key: SQS drops a
repeat within 5 minutes); ``deduplication=content`` leaves the id to SQS, which hashes
the body (``create()`` turns on ``ContentBasedDeduplication``). Ids that are not 1-128
printable ASCII characters are replaced by their SHA-256. SQS refuses per-message delays
on FIFO queues, so ``send(..., delay=…)`` raises :class:`~overcast.errors.NotSupported`
naming the queue (:class:`SQSFifoQueue` lacks the ``delay`` capability); the option
``delay`` delays every message instead.

Attribute names SQS would refuse (non-ASCII, or outside ``[A-Za-z0-9_.-]``) are sent
hex-encoded under an ``ovc.`` prefix and decoded on receipt; values are any text.

URL options: ``region``, ``endpoint``, ``account`` (a queue of another account),
``max_attempts`` (default 5), ``visibility_timeout`` (seconds, default 30), ``delay``
(seconds every message waits, the queue's ``DelaySeconds``, set by ``create()``; default
0), ``group``, ``group_by``, ``dedup_by``,
``deduplication`` (FIFO only), ``envelope=sns`` (messages delivered by an SNS
subscription: the envelope is unwrapped, see :mod:`.sns`).

IAM: ``sqs:SendMessage``, ``ReceiveMessage``, ``DeleteMessage``,
``ChangeMessageVisibility``, ``GetQueueUrl``, ``GetQueueAttributes``; ``CreateQueue`` and
``SetQueueAttributes`` for ``create()``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from ...errors import ConfigError, InvalidArgument, NotSupported, ProviderError
from ...resources.queue import Message, Queue
from ...resources.url import ResourceURL
from ._client import aws_error, client, error_code

__all__ = [
    "FifoIds",
    "SQSFifoQueue",
    "SQSQueue",
    "decode_attribute_name",
    "encode_attribute_name",
    "fifo_options_error",
    "queue_for",
]

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_PLAIN_ATTRIBUTE = re.compile(r"^[A-Za-z0-9_-](?:[A-Za-z0-9_.-]{0,254})$")
_ESCAPE = "ovc."
_MAX_MESSAGE = 256 * 1024
#: what SQS and SNS accept as a message group or deduplication id: 1-128 printable ASCII characters
_FIFO_ID = re.compile(r"^[!-~]{1,128}$")
_FIFO_OPTIONS = ("group", "group_by", "dedup_by", "deduplication")


def encode_attribute_name(name: str) -> str:
    """A name SQS and SNS accept, reversible by :func:`decode_attribute_name`."""
    if (
        _PLAIN_ATTRIBUTE.match(name)
        and ".." not in name
        and not name.endswith(".")
        and not name.lower().startswith(("aws.", "amazon.", _ESCAPE))
    ):
        return name
    return _ESCAPE + name.encode().hex()


def decode_attribute_name(name: str) -> str:
    if name.startswith(_ESCAPE):
        try:
            return bytes.fromhex(name[len(_ESCAPE) :]).decode()
        except ValueError:
            return name
    return name


def _seconds(value: float) -> int:
    return math.ceil(value - 1e-9) if value > 0 else 0


def _fifo_id(value: str) -> str:
    return value if _FIFO_ID.match(value) else hashlib.sha256(value.encode()).hexdigest()


def fifo_options_error(location: ResourceURL, what: str, kind: str) -> None:
    """Raise :class:`ConfigError` if ``location`` (not FIFO) has an option only FIFO takes."""
    given = [option for option in _FIFO_OPTIONS if option in location.options]
    if given:
        raise ConfigError(f"{what}: option {given[0]!r} applies to FIFO {kind} only (a name ending in '.fifo')")


class FifoIds:
    """The ``MessageGroupId`` and ``MessageDeduplicationId`` of FIFO sends (SQS) and publishes
    (SNS), from the options ``group``, ``group_by``, ``dedup_by`` and ``deduplication``."""

    __slots__ = ("content", "dedup_by", "group", "group_by")

    def __init__(self, location: ResourceURL, what: str) -> None:
        self.group = location.option("group") or "default"
        if self.group != "*" and not _FIFO_ID.match(self.group):
            raise ConfigError(
                f"{what}: option group must be '*' or 1-128 printable ASCII characters, got {self.group!r}"
            )
        self.group_by = location.option("group_by") or None
        self.dedup_by = location.option("dedup_by") or None
        self.content = location.option_choice("deduplication", ("id", "content"), "id", resource=what) == "content"

    def request(self, attributes: Mapping[str, str]) -> dict[str, str]:
        """The FIFO parameters of one send or publish of a message with ``attributes``."""
        keyed = attributes.get(self.group_by) if self.group_by else None
        group = self.group if keyed is None else _fifo_id(keyed)
        found = {"MessageGroupId": uuid.uuid4().hex if group == "*" and keyed is None else group}
        key = attributes.get(self.dedup_by) if self.dedup_by else None
        if key is not None:
            found["MessageDeduplicationId"] = _fifo_id(key)
        elif not self.content:
            found["MessageDeduplicationId"] = uuid.uuid4().hex
        return found


def queue_for(url: ResourceURL | str, *, name: str | None = None) -> SQSQueue:
    """The queue class ``url`` needs: :class:`SQSFifoQueue` for a ``.fifo`` name."""
    location = ResourceURL.parse(url) if isinstance(url, str) else url
    cls = SQSFifoQueue if location.host.endswith(".fifo") else SQSQueue
    return cls(location, name=name)


class SQSQueue(Queue):
    """An SQS queue with its redrive dead-letter queue.

    Capabilities: ``delay``, ``dead_letter``, ``multiprocess``, ``depth``. Opening a
    ``.fifo`` name gives an :class:`SQSFifoQueue`.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"delay", "dead_letter", "multiprocess", "depth"})
    offload: ClassVar[bool] = True
    fifo: ClassVar[bool] = False

    @staticmethod
    def legal_name(name: str) -> str:
        """A name Overcast derives (a backlog's ``APP-NAME``) as one SQS takes, with room for
        ``-dlq`` (so two dead-letter queues are never cut to one name): itself when it fits, else
        cut, then a hash of the whole name."""
        limit = 80 - len("-dlq")
        if len(name) <= limit and _QUEUE_NAME.match(name):
            return name
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        head = re.sub(r"[^A-Za-z0-9_-]+", "-", name)[: limit - len(digest) - 1].rstrip("-")
        return f"{head}-{digest}"

    def __new__(cls, url: ResourceURL | str | None = None, *, name: str | None = None) -> SQSQueue:
        if cls is SQSQueue and url is not None:
            host = (ResourceURL.parse(url) if isinstance(url, str) else url).host
            if host.endswith(".fifo"):
                return super().__new__(SQSFifoQueue)
        return super().__new__(cls)

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self.queue_name = self.location.host
        base = self.queue_name[: -len(".fifo")] if self.fifo else self.queue_name
        if self.fifo != self.queue_name.endswith(".fifo") or not _QUEUE_NAME.match(base) or len(self.queue_name) > 80:
            raise ConfigError(
                f"{self.name}: SQS queue name {self.queue_name!r} in {self.location} must be 1-80 letters, "
                "digits, '-' or '_' (with '.fifo' at the end for a FIFO queue)"
            )
        loc, who = self.location, self.name
        self.max_attempts = loc.option_int(
            "max_attempts", self.default_max_attempts, minimum=1, maximum=1000, resource=who
        )
        self.visibility_timeout = loc.option_int(
            "visibility_timeout", 30, minimum=0, maximum=43200, unit="seconds", resource=who
        )
        self.delay = loc.option_int("delay", 0, minimum=0, maximum=900, unit="seconds", resource=who)
        what = f"{self.name}: SQS queue {self.queue_name}"
        if self.fifo:
            self.fifo_ids: FifoIds | None = FifoIds(self.location, what)
        else:
            self.fifo_ids = None
            fifo_options_error(self.location, what, "queues")
        self.envelope = loc.option_choice("envelope", ("sns",), None, resource=who)
        self._client: Any = None
        self._url: str | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client("sqs", self.location)
        return self._client

    def _error(self, exc: Exception) -> ProviderError:
        error = aws_error(exc, f"{self.name}: SQS queue {self.queue_name}", resource=self.name)
        if error_code(exc) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            error.args = (
                f"{self.name}: SQS queue {self.queue_name} does not exist (create it: `await queue.create()`)",
            )
        return error

    @property
    def dead_letter_name(self) -> str:
        """``QUEUE-dlq`` (``QUEUE-dlq.fifo``: a FIFO queue's dead letters must be FIFO too),
        the name shortened to SQS's 80 characters."""
        suffix = ".fifo" if self.fifo else ""
        base = self.queue_name[: -len(suffix)] if suffix else self.queue_name
        return f"{base[: 80 - len('-dlq') - len(suffix)]}-dlq{suffix}"

    def visibility_default(self) -> float:
        return float(self.visibility_timeout)

    def queue_url(self) -> str:
        """The queue's URL (looked up once; in the account of the option ``account`` if set)."""
        found = self._url
        if found is None:
            owner = self.location.option("account")
            request = {"QueueName": self.queue_name, **({"QueueOwnerAWSAccountId": owner} if owner else {})}
            try:
                found = self._url = str(self.client.get_queue_url(**request)["QueueUrl"])
            except Exception as exc:
                raise self._error(exc) from exc
        return found

    # -- life cycle ----------------------------------------------------------------------

    def _attributes(self) -> dict[str, str]:
        """Attributes the queue and its dead-letter queue share."""
        attributes = {"VisibilityTimeout": str(self.visibility_timeout)}
        if self.fifo:
            attributes["FifoQueue"] = "true"
        return attributes

    def _create_queue(self, name: str, attributes: dict[str, str]) -> str:
        try:
            return str(self.client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
        except Exception as exc:
            if error_code(exc) not in ("QueueAlreadyExists", "QueueNameExists"):
                raise self._error(exc) from exc
        # The queue exists with other attributes: update them (a queue's FIFO-ness cannot change).
        changed = {k: v for k, v in attributes.items() if k != "FifoQueue"}
        try:
            url = str(self.client.get_queue_url(QueueName=name)["QueueUrl"])
            self.client.set_queue_attributes(QueueUrl=url, Attributes=changed)
        except Exception as exc:
            raise self._error(exc) from exc
        return url

    def _create_blocking(self) -> None:
        dlq_url = self._create_queue(self.dead_letter_name, self._attributes())
        try:
            dlq_arn = self.client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
        except Exception as exc:
            raise self._error(exc) from exc
        policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": self.max_attempts})
        attributes = {**self._attributes(), "RedrivePolicy": policy, "DelaySeconds": str(self.delay)}
        if self.fifo_ids is not None:
            attributes["ContentBasedDeduplication"] = "true" if self.fifo_ids.content else "false"
        self._url = self._create_queue(self.queue_name, attributes)

    def _ping_blocking(self) -> None:
        self.queue_url()

    def dead_letters(self) -> SQSQueue:
        """The queue messages move to after ``max_attempts`` deliveries (from the redrive policy)."""
        name = self.dead_letter_name
        try:
            attrs = self.client.get_queue_attributes(QueueUrl=self.queue_url(), AttributeNames=["RedrivePolicy"])
            policy = attrs.get("Attributes", {}).get("RedrivePolicy")
        except Exception as exc:
            raise self._error(exc) from exc
        if policy:
            name = str(json.loads(policy)["deadLetterTargetArn"]).rsplit(":", 1)[-1]
        options = {k: v for k, v in self.location.options.items() if k in ("region", "endpoint", "envelope")}
        return queue_for(ResourceURL("sqs", name, "", options), name=f"{self.name} (dead letters)")

    # -- hooks ---------------------------------------------------------------------------

    def _check_size(self, data: bytes, attributes: dict[str, str]) -> dict[str, Any]:
        encoded = {encode_attribute_name(k): {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
        size = len(data) + sum(len(k) + len("String") + len(v["StringValue"].encode()) for k, v in encoded.items())
        if size > _MAX_MESSAGE:
            raise InvalidArgument(
                f"{self.name}: message body and attributes are {size} bytes; SQS's limit is {_MAX_MESSAGE}",
                resource=self.name,
            )
        return encoded

    def _send_blocking(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        request: dict[str, Any] = {"QueueUrl": self.queue_url(), "MessageBody": data.decode()}
        encoded = self._check_size(data, attributes)
        if encoded:
            request["MessageAttributes"] = encoded
        if self.fifo_ids is not None:
            if delay:
                raise NotSupported(
                    f"{self.name}: SQS FIFO queue {self.queue_name} takes no per-message delay (SQS delays "
                    "FIFO messages only queue-wide: give the queue the URL option delay=SECONDS)",
                    resource=self.name,
                )
            request.update(self.fifo_ids.request(attributes))
        elif delay:
            request["DelaySeconds"] = _seconds(delay)
        try:
            return str(self.client.send_message(**request)["MessageId"])
        except Exception as exc:
            raise self._error(exc) from exc

    def _receive_blocking(self, max_messages: int, visibility_timeout: float, wait: float) -> list[Message]:
        try:
            # a long poll answers after up to ``wait`` seconds: its client reads that much longer
            poller = client("sqs", self.location, wait=int(wait)) if wait >= 1 else self.client
            response = poller.receive_message(
                QueueUrl=self.queue_url(),
                MaxNumberOfMessages=max_messages,
                VisibilityTimeout=_seconds(visibility_timeout),
                WaitTimeSeconds=int(wait),
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        except Exception as exc:
            raise self._error(exc) from exc
        return [self._message(raw) for raw in response.get("Messages", ())]

    def _message(self, raw: dict[str, Any]) -> Message:
        attempts = int(raw.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        receipt = str(raw["ReceiptHandle"])
        if self.envelope == "sns":
            envelope = json.loads(raw["Body"])
            if isinstance(envelope, dict) and envelope.get("Type") == "Notification":
                attrs = {
                    decode_attribute_name(k): str(v.get("Value", ""))
                    for k, v in (envelope.get("MessageAttributes") or {}).items()
                }
                return Message(str(envelope["MessageId"]), json.loads(envelope["Message"]), attrs, attempts, receipt)
        attributes = {
            decode_attribute_name(k): str(v.get("StringValue", ""))
            for k, v in (raw.get("MessageAttributes") or {}).items()
        }
        return Message(str(raw["MessageId"]), json.loads(raw["Body"]), attributes, attempts, receipt)

    def _ack_blocking(self, message: Message) -> None:
        try:
            self.client.delete_message(QueueUrl=self.queue_url(), ReceiptHandle=message.receipt)
        except Exception as exc:
            raise self._error(exc) from exc

    def _nack_blocking(self, message: Message, delay: float) -> None:
        try:
            self.client.change_message_visibility(
                QueueUrl=self.queue_url(), ReceiptHandle=message.receipt, VisibilityTimeout=_seconds(delay)
            )
        except Exception as exc:
            raise self._error(exc) from exc

    def _depth_blocking(self) -> int:
        try:
            attrs = self.client.get_queue_attributes(
                QueueUrl=self.queue_url(), AttributeNames=["ApproximateNumberOfMessages"]
            )
        except Exception as exc:
            raise self._error(exc) from exc
        return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


class SQSFifoQueue(SQSQueue):
    """An SQS FIFO queue (a ``.fifo`` name). Capabilities: ``dead_letter``, ``fifo``,
    ``multiprocess``, ``depth`` — no per-message ``delay``."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"dead_letter", "fifo", "multiprocess", "depth"})
    fifo: ClassVar[bool] = True
