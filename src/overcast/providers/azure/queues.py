"""``azqueue://QUEUE``: Azure Storage Queues, and topics that fan out to one queue per subscription.

A message's text is an envelope line ``{"id": ..., "a": {attributes}}``, a newline, then
the body as JSON: the id is Overcast's own, so it survives the move to the poison queue
(Azure's message id does not), and :func:`decode_message` reads it back for the Azure
Functions queue trigger (``host.json`` sets ``messageEncoding`` to :data:`MESSAGE_ENCODING`).

- Visibility timeout and delay are the service's own (whole seconds, rounded up).
- ``attempts`` is the service's dequeue count. A message received more than
  ``max_attempts`` times (option, default 5, as the Functions host's ``maxDequeueCount``)
  is moved to ``<queue>-poison`` instead of being delivered, which is where the Functions
  host puts it too.
- ``receive(wait=...)`` polls: Storage Queues have no long polling.

A topic ``azqueue://TOPIC`` keeps one queue per subscription, named
``TOPIC-<subscription>`` (made a valid queue name) and marked with the metadata
``overcast_topic=TOPIC``; ``publish`` lists the marked queues and sends to each.

The blocking face uses ``azure.storage.queue``; the async face ``azure.storage.queue.aio``,
one client per event loop (see ``_credentials``). Each operation is written once, as a flow
that both faces run (see ``_flow``).

No ``depth``: the service's ``approximate_message_count`` counts invisible messages too
(delayed ones and those in flight), which ``Queue.depth`` must leave out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import uuid
from typing import Any, ClassVar

from azure.core import exceptions as az
from azure.storage.queue import QueueServiceClient

from ...errors import InvalidArgument
from ...resources.queue import Message, Queue, QueueLimits, Topic, poll, poll_blocking
from ...resources.url import ResourceURL
from ._credentials import LoopClient, error, service_client
from ._flow import All, Flow, arun, run

__all__ = [
    "MESSAGE_ENCODING",
    "AzureStorageQueue",
    "AzureStorageTopic",
    "decode_message",
    "legal_queue_name",
    "subscription_queue_name",
]

#: how message text is encoded, for the Functions host's ``messageEncoding``
MESSAGE_ENCODING = "none"
MAX_MESSAGE_BYTES = 64 * 1024
POISON_SUFFIX = "-poison"
MAX_NAME = 63 - len(POISON_SUFFIX)
TOPIC_METADATA = "overcast_topic"
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
_POLL_FIRST, _POLL_MAX = 0.05, 0.5


def check_queue_name(name: str, what: str) -> str:
    # a poison queue's own name takes the room left for its suffix (63 in all)
    longest = MAX_NAME + len(POISON_SUFFIX) if name.endswith(POISON_SUFFIX) else MAX_NAME
    if not (3 <= len(name) <= longest and _NAME.match(name)):
        raise InvalidArgument(
            f"{what}: an Azure queue name is 3-{MAX_NAME} lowercase letters, digits and single hyphens "
            f"(room left for {POISON_SUFFIX!r}); got {name!r}"
        )
    return name


def legal_queue_name(name: str) -> str:
    """``name`` as a queue name Azure takes, with room left for :data:`POISON_SUFFIX`: itself
    when it is one; else its lowercase slug cut to fit, then a hash of the whole name (so two
    long names never collide), as :func:`subscription_queue_name` shortens. Deterministic: the
    runtime and a plan derive the same name."""
    if 3 <= len(name) <= MAX_NAME and _NAME.match(name):
        return name
    slug = "-".join(re.findall(r"[a-z0-9]+", name.lower()))
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    head = slug[: MAX_NAME - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}" if head else digest


def subscription_queue_name(topic: str, subscription: str) -> str:
    """The queue of ``subscription`` on ``topic``: ``topic-slug``, with a hash when the slug is not the name."""
    slug = "-".join(re.findall(r"[a-z0-9]+", subscription.lower()))
    digest = hashlib.sha1(subscription.encode()).hexdigest()[:8]
    tail = slug if slug == subscription else (f"{slug}-{digest}" if slug else digest)
    name = f"{topic}-{tail}"
    if len(name) > MAX_NAME:
        room = MAX_NAME - len(topic) - len(digest) - 2
        head = slug[: max(room, 0)].strip("-")
        name = f"{topic}-{head}-{digest}" if head else f"{topic}-{digest}"
    return name[:MAX_NAME].rstrip("-")


def encode_message(message_id: str, data: bytes, attributes: dict[str, str]) -> str:
    header = json.dumps({"id": message_id, "a": attributes}, separators=(",", ":"), ensure_ascii=False)
    return header + "\n" + data.decode()


def decode_message(raw: bytes | str) -> tuple[Any, dict[str, str], str | None]:
    """A message's text as this provider wrote it: (body, attributes, Overcast message id).
    Text it did not write is read as JSON, else kept as text, with no id."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else raw
    head, sep, body = text.partition("\n")
    if sep and head.startswith('{"id":'):
        try:
            envelope = json.loads(head)
            message_id, given = envelope.get("id"), envelope.get("a")
            if isinstance(message_id, str) and message_id and isinstance(given, dict | None):
                # attributes as it wrote them, strings; anything else in the header is not its
                attributes = {k: v for k, v in (given or {}).items() if isinstance(v, str)}
                return json.loads(body), attributes, message_id
        except ValueError:
            pass
    try:
        return json.loads(text), {}, None
    except ValueError:
        return text, {}, None


def _stale(exc: az.HttpResponseError) -> bool:
    """A receipt that no longer holds the message (it was delivered again, or deleted)."""
    raw = getattr(exc, "error_code", None)
    code = str(getattr(raw, "value", raw) or "")
    return exc.status_code == 404 or code in ("PopReceiptMismatch", "MessageNotFound")


def _whole_seconds(value: float) -> int:
    return math.ceil(value - 1e-9) if value > 0 else 0


class AzureStorageQueue(Queue):
    """One Azure Storage queue. Options: ``max_attempts`` (default 5; 0: never dead-letter),
    ``account`` / ``endpoint`` / ``connection_env`` (see ``_credentials``).

    Capabilities: ``delay``, ``dead_letter``, ``multiprocess``, ``peek``.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"delay", "dead_letter", "multiprocess", "peek"})
    #: how a name Overcast derives (a backlog's ``APP-NAME``) is made one Azure takes
    legal_name = staticmethod(legal_queue_name)
    #: room is left in Azure's 64 KiB message for the envelope and attributes
    limits: ClassVar[QueueLimits] = QueueLimits(max_body_bytes=48 * 1024)
    offload: ClassVar[bool] = True
    upstream: ClassVar[str] = "azure_queue"

    def __init__(
        self,
        url: ResourceURL | str | None = None,
        *,
        name: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(url, name=name)
        loc = self.location
        self.queue_name = check_queue_name(loc.host, str(loc))
        raw = loc.option("max_attempts")
        try:
            self.max_attempts = self.default_max_attempts if raw is None else int(raw)
        except ValueError as exc:
            raise InvalidArgument(f"{loc}: max_attempts must be an int, got {raw!r}") from exc
        if self.max_attempts < 0:
            raise InvalidArgument(f"{loc}: max_attempts must be 0 or more, got {raw!r}")
        self._metadata = dict(metadata or {})
        self._service: QueueServiceClient = service_client(loc, "queue", QueueServiceClient)
        self._queue = self._service.get_queue_client(self.queue_name)
        self._aio = LoopClient(loc, "queue", lambda service: service.get_queue_client(self.queue_name))
        self._aio_service = LoopClient(loc, "queue", lambda service: service)

    def _fail(self, exc: Exception, what: str) -> Exception:
        return error(exc, self.name, what)

    def dead_letters(self) -> AzureStorageQueue:
        options = {k: v for k, v in self.location.options.items() if k != "max_attempts"}
        options["max_attempts"] = "0"
        location = ResourceURL("azqueue", self.queue_name + POISON_SUFFIX, "", options, self.location.base_dir)
        return AzureStorageQueue(location, name=f"{self.name} (dead letters)")

    # -- life cycle ------------------------------------------------------------------------

    def _create_blocking(self) -> None:
        try:
            self._queue.create_queue(metadata=self._metadata or None)
        except az.ResourceExistsError:
            if self._metadata:
                self._queue.set_queue_metadata(self._metadata)
        except az.AzureError as exc:
            raise self._fail(exc, "create queue") from exc

    def _ping_blocking(self) -> None:
        try:
            self._queue.get_queue_properties()
        except az.AzureError as exc:
            raise self._fail(exc, "ping") from exc

    # -- operations ------------------------------------------------------------------------

    def _envelope(self, data: bytes, attributes: dict[str, str]) -> tuple[str, str]:
        message_id = uuid.uuid4().hex
        text = encode_message(message_id, data, attributes)
        size = len(text.encode())
        if size > MAX_MESSAGE_BYTES:
            raise InvalidArgument(
                f"{self.name}: message with its attributes is {size} bytes; Azure's limit is {MAX_MESSAGE_BYTES}",
                resource=self.name,
            )
        return message_id, text

    def _message(self, raw: Any) -> Message:
        body, attributes, message_id = decode_message(raw.content or "")
        attempts = int(raw.dequeue_count or 1)
        return Message(message_id or raw.id, body, attributes, attempts, f"{raw.id} {raw.pop_receipt}")

    def _exhausted(self, raw: Any) -> bool:
        """Whether ``raw`` was received more than ``max_attempts`` times (it goes to the poison queue)."""
        return bool(self.max_attempts) and int(raw.dequeue_count or 1) > self.max_attempts

    def _settle_error(self, exc: Exception, what: str) -> Exception | None:
        """The error to raise for ``exc`` in an ack, nack or move; None for a stale receipt,
        which changes nothing, as on the other clouds (whoever holds the message now settles it)."""
        if isinstance(exc, az.HttpResponseError) and _stale(exc):
            return None
        return self._fail(exc, what)

    # -- the operations: each one flow, run by both faces (see ``_flow``) ---------------------

    def _send_flow(self, queue: Any, data: bytes, attributes: dict[str, str], delay: float) -> Flow[str]:
        message_id, text = self._envelope(data, attributes)
        yield from self._text_flow(queue, text, delay)
        return message_id

    def _text_flow(self, queue: Any, text: str, delay: float) -> Flow[None]:
        try:
            yield queue.send_message(text, visibility_timeout=_whole_seconds(delay) or None)
        except az.AzureError as exc:
            raise self._fail(exc, "send") from exc

    def _send_text(self, text: str, delay: float) -> None:
        """Send message text as it is (how the Functions adapter moves a message to the poison queue)."""
        run(self._text_flow(self._queue, text, delay))

    def _receive_flow(self, queue: Any, service: Any, max_messages: int, visibility: int) -> Flow[list[Message]]:
        try:
            pager = queue.receive_messages(
                messages_per_page=max_messages, max_messages=max_messages, visibility_timeout=visibility
            )
            received = yield All(pager)
        except az.AzureError as exc:
            raise self._fail(exc, "receive") from exc
        out: list[Message] = []
        for raw in received:
            if self._exhausted(raw):
                yield from self._bury_flow(queue, service, raw)
            else:
                out.append(self._message(raw))
        return out

    def _peek_flow(self, queue: Any, limit: int) -> Flow[list[Message]]:
        try:
            peeked = yield queue.peek_messages(max_messages=limit)
        except az.AzureError as exc:
            raise self._fail(exc, "peek") from exc
        out = []
        for raw in peeked:
            if self.max_attempts and int(raw.dequeue_count or 0) >= self.max_attempts:
                continue  # the next receive moves it to the poison queue
            body, attributes, message_id = decode_message(raw.content or "")
            out.append(Message(message_id or raw.id, body, attributes, int(raw.dequeue_count or 0)))
        return out

    def _bury_flow(self, queue: Any, service: Any, raw: Any) -> Flow[None]:
        """Move a message past its attempts to the poison queue (created on first use)."""
        text = raw.content or ""
        poison = service.get_queue_client(self.queue_name + POISON_SUFFIX)
        try:
            try:
                yield poison.send_message(text)
            except az.ResourceNotFoundError:
                with contextlib.suppress(az.ResourceExistsError):
                    yield poison.create_queue()
                yield poison.send_message(text)
            yield queue.delete_message(raw.id, raw.pop_receipt)
        except az.AzureError as exc:
            failure = self._settle_error(exc, "move a message to the poison queue")
            if failure is not None:
                raise failure from exc

    def _settle_flow(self, queue: Any, message: Message, delay: float | None) -> Flow[None]:
        """Ack ``message`` (``delay`` None: delete it) or nack it (visible again after ``delay``)."""
        msg_id, _, receipt = message.receipt.partition(" ")
        try:
            if delay is None:
                yield queue.delete_message(msg_id, receipt)
            else:
                yield queue.update_message(msg_id, receipt, visibility_timeout=_whole_seconds(delay))
        except az.AzureError as exc:
            failure = self._settle_error(exc, "ack" if delay is None else "nack")
            if failure is not None:
                raise failure from exc

    # -- the faces: azure.storage.queue, and azure.storage.queue.aio on the running loop -----

    def _send_blocking(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        return run(self._send_flow(self._queue, data, attributes, delay))

    async def _send(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        return await arun(self._send_flow(await self._aio(), data, attributes, delay))

    def _receive_blocking(self, max_messages: int, visibility_timeout: float, wait: float) -> list[Message]:
        visibility = max(1, _whole_seconds(visibility_timeout))
        return poll_blocking(
            lambda: run(self._receive_flow(self._queue, self._service, max_messages, visibility)),
            wait,
            first=_POLL_FIRST,
            most=_POLL_MAX,
        )

    async def _receive(self, max_messages: int, visibility_timeout: float, wait: float) -> list[Message]:
        visibility = max(1, _whole_seconds(visibility_timeout))

        async def once() -> list[Message]:
            flow = self._receive_flow(await self._aio(), await self._aio_service(), max_messages, visibility)
            return await arun(flow)

        return await poll(once, wait, first=_POLL_FIRST, most=_POLL_MAX)

    def _peek_blocking(self, limit: int) -> list[Message]:
        return run(self._peek_flow(self._queue, limit))

    async def _peek(self, limit: int) -> list[Message]:
        return await arun(self._peek_flow(await self._aio(), limit))

    def _ack_blocking(self, message: Message) -> None:
        run(self._settle_flow(self._queue, message, None))

    async def _ack(self, message: Message) -> None:
        await arun(self._settle_flow(await self._aio(), message, None))

    def _nack_blocking(self, message: Message, delay: float) -> None:
        run(self._settle_flow(self._queue, message, delay))

    async def _nack(self, message: Message, delay: float) -> None:
        await arun(self._settle_flow(await self._aio(), message, delay))

    def close(self) -> None:
        return None


class AzureStorageTopic(Topic):
    """A topic on Storage Queues: each publish is sent to every subscription's queue.

    Capabilities: ``delay`` is not offered on publish; ``dead_letter`` and ``multiprocess``
    hold for its subscriptions.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"dead_letter", "multiprocess"})
    limits: ClassVar[QueueLimits] = AzureStorageQueue.limits
    offload: ClassVar[bool] = True
    upstream: ClassVar[str] = "azure_queue"

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        loc = self.location
        self.topic_name = loc.host
        if not (3 <= len(loc.host) <= 40 and _NAME.match(loc.host)):
            raise InvalidArgument(
                f"{loc}: an Azure Storage topic name is 3-40 lowercase letters, digits and single hyphens "
                f"(its subscriptions' queues add to it); got {loc.host!r}"
            )
        self._service: QueueServiceClient = service_client(loc, "queue", QueueServiceClient)
        self._aio = LoopClient(loc, "queue", lambda service: service)

    def _subscription(self, name: str, max_attempts: int | None) -> AzureStorageQueue:
        options = dict(self.location.options)
        if max_attempts is not None:
            options["max_attempts"] = str(max_attempts)
        queue = subscription_queue_name(self.topic_name, name)
        location = ResourceURL("azqueue", queue, "", options, self.location.base_dir)
        return AzureStorageQueue(
            location, name=f"{self.name} subscription {name!r}", metadata={TOPIC_METADATA: self.topic_name}
        )

    def _publication(self, data: bytes, attributes: dict[str, str]) -> tuple[str, str]:
        message_id = uuid.uuid4().hex
        text = encode_message(message_id, data, attributes)
        if len(text.encode()) > MAX_MESSAGE_BYTES:
            raise InvalidArgument(
                f"{self.name}: message with its attributes is over Azure's {MAX_MESSAGE_BYTES} bytes",
                resource=self.name,
            )
        return message_id, text

    def _subscribed(self, props: Any) -> bool:
        return (props.metadata or {}).get(TOPIC_METADATA) == self.topic_name

    def _publish_flow(self, service: Any, data: bytes, attributes: dict[str, str]) -> Flow[str]:
        message_id, text = self._publication(data, attributes)
        try:
            listed = yield All(service.list_queues(name_starts_with=f"{self.topic_name}-", include_metadata=True))
        except az.AzureError as exc:
            raise error(exc, self.name, "list subscriptions") from exc
        for queue in [props.name for props in listed if self._subscribed(props)]:
            try:
                yield service.get_queue_client(queue).send_message(text)
            except az.ResourceNotFoundError:
                continue  # deleted since it was listed
            except az.AzureError as exc:
                raise error(exc, self.name, f"publish to {queue}") from exc
        return message_id

    def _publish_blocking(self, data: bytes, attributes: dict[str, str]) -> str:
        return run(self._publish_flow(self._service, data, attributes))

    async def _publish(self, data: bytes, attributes: dict[str, str]) -> str:
        return await arun(self._publish_flow(await self._aio(), data, attributes))

    def close(self) -> None:
        return None
