"""Queues and topics: at-least-once messages with visibility timeout, delay and dead letters.

A received message stays invisible for its visibility timeout; if it is not acked
by then it is delivered again. Each delivery counts an attempt; a message received
``max_attempts`` times without an ack moves to the dead-letter queue instead of
being delivered once more (SQS's ``maxReceiveCount``, Pub/Sub's
``max_delivery_attempts``, Azure's poison queue). Message ids are stable across
redeliveries, so handlers can be idempotent.

A topic fans each published message out to all of its subscriptions; a
subscription is a queue.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, ClassVar

from ..errors import InvalidArgument, NotSupported
from . import bridge
from .base import Resource
from .keys import check_key
from .records import field, record

__all__ = [
    "Message",
    "Queue",
    "QueueLimits",
    "SyncQueue",
    "SyncTopic",
    "Topic",
    "decode_body",
    "seconds",
]


@record(frozen=True, slots=True)
class Message:
    """One delivery of a message.

    Attributes:
        id: stable across redeliveries; use it to make handlers idempotent.
        body: the JSON value sent.
        attributes: string attributes sent with it (trace context, content type).
        attempts: how many times it has been delivered, this one included.
        receipt: the provider's handle for acking this delivery.
    """

    id: str
    body: Any
    attributes: dict[str, str] = field(default_factory=dict)
    attempts: int = 1
    receipt: str = ""


@record(frozen=True, slots=True)
class QueueLimits:
    """Checked before any call; the SQS limits, the strictest of the clouds but Azure's 64 KB."""

    max_body_bytes: int = 256 * 1024
    max_delay: float = 900.0
    max_visibility_timeout: float = 12 * 3600.0
    max_receive: int = 10
    max_wait: float = 20.0
    max_attributes: int = 10
    #: messages one ``peek`` shows at most (Azure's ``peek_messages`` limit)
    max_peek: int = 32


def seconds(value: timedelta | float | int | None, *, name: str, resource: str, maximum: float) -> float | None:
    """Turn a duration argument into seconds, checking it lies in ``[0, maximum]``."""
    if value is None:
        return None
    secs = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(secs, bool) or not isinstance(secs, (int, float)) or secs < 0 or secs > maximum:
        raise InvalidArgument(
            f"{resource}: {name} must be between 0 and {maximum:g} seconds, got {value!r}", resource=resource
        )
    return float(secs)


#: Called with each outgoing message's attributes and how many more fit, before it is sent or
#: published. Telemetry adds W3C trace context here while it traces (resources never import it).
attribute_injectors: list[Callable[[dict[str, str], int], None]] = []


def decode_body(data: bytes | str) -> Any:
    import json  # on first use, not with the module: declaring a queue needs none of it

    return json.loads(data)


class _Sender(Resource):
    """What queues and topics share: encoding and checking message bodies."""

    limits: ClassVar[QueueLimits] = QueueLimits()

    def _encode(self, body: Any, attributes: Mapping[str, str] | None) -> tuple[bytes, dict[str, str]]:
        import json

        try:
            data = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(
                f"{self.name}: message body is not JSON-serializable: {exc}", resource=self.name
            ) from exc
        if len(data) > self.limits.max_body_bytes:
            raise InvalidArgument(
                f"{self.name}: message body is {len(data)} bytes as JSON; the limit is {self.limits.max_body_bytes}",
                resource=self.name,
            )
        attrs = dict(attributes or {})
        if len(attrs) > self.limits.max_attributes:
            raise InvalidArgument(
                f"{self.name}: {len(attrs)} message attributes; the limit is {self.limits.max_attributes}",
                resource=self.name,
            )
        for name, value in attrs.items():
            check_key(name, max_bytes=256, resource=self.name, what="attribute name")
            if not isinstance(value, str):
                raise InvalidArgument(f"{self.name}: attribute {name!r} must be a str", resource=self.name)
        for add in attribute_injectors:
            add(attrs, self.limits.max_attributes - len(attrs))
        return data, attrs


class Queue(_Sender):
    """A point-to-point queue. Capabilities: ``delay``, ``dead_letter``, ``fifo``, ``depth``, ``peek``."""

    kind: ClassVar[str] = "queue"
    default_visibility_timeout: ClassVar[float] = 30.0
    default_max_attempts: ClassVar[int] = 5
    required_hooks: ClassVar[tuple[str, ...]] = ("_send", "_receive", "_ack", "_nack")

    async def send(
        self, body: Any, *, delay: timedelta | float | None = None, attributes: Mapping[str, str] | None = None
    ) -> str:
        """Send a JSON value; return the message id. ``delay`` hides it for that long first."""
        data, attrs = self._encode(body, attributes)
        wait = seconds(delay, name="delay", resource=self.name, maximum=self.limits.max_delay)
        return await self._send(data, attrs, wait or 0.0)

    async def receive(
        self,
        *,
        max_messages: int = 1,
        visibility_timeout: timedelta | float | None = None,
        wait: timedelta | float | None = None,
    ) -> list[Message]:
        """Receive up to ``max_messages``, waiting up to ``wait`` for the first one."""
        count, vis, wait_s = self._check_receive(max_messages, visibility_timeout, wait)
        return await self._receive(count, vis, wait_s)

    async def ack(self, message: Message) -> None:
        """Acknowledge a delivery: the message is done and will not come back."""
        await self._ack(self._check_message(message))

    async def nack(self, message: Message, *, delay: timedelta | float | None = None) -> None:
        """Give a delivery back: it becomes visible again after ``delay`` (at once by default)."""
        wait = seconds(delay, name="delay", resource=self.name, maximum=self.limits.max_visibility_timeout)
        await self._nack(self._check_message(message), wait or 0.0)

    def dead_letters(self) -> Queue:
        """The queue that receives messages that exhausted their attempts."""
        raise NotImplementedError

    async def depth(self) -> int:
        """How many messages wait to be received now (approximate on the clouds, like SQS's
        ``ApproximateNumberOfMessages``): not the delayed ones, nor those in flight.
        Providers with capability ``depth``; the others raise ``NotSupported``."""
        return await self._depth()

    async def peek(self, limit: int = 10) -> list[Message]:
        """Up to ``limit`` messages waiting to be received, oldest first, without receiving them:
        nothing is hidden, no attempt counted. Each carries the deliveries it had so far as
        ``attempts`` and no receipt (it cannot be acked). Providers with capability ``peek``
        (a native peek); the others raise ``NotSupported``."""
        return await self._peek(self._check_peek(limit))

    @property
    def sync(self) -> SyncQueue:
        return SyncQueue(self)

    def _check_peek(self, limit: int) -> int:
        if isinstance(limit, bool) or not isinstance(limit, int) or not (1 <= limit <= self.limits.max_peek):
            raise InvalidArgument(
                f"{self.name}: peek shows 1..{self.limits.max_peek} messages, got {limit!r}", resource=self.name
            )
        return limit

    def _check_receive(
        self, max_messages: int, visibility_timeout: timedelta | float | None, wait: timedelta | float | None
    ) -> tuple[int, float, float]:
        if (
            isinstance(max_messages, bool)
            or not isinstance(max_messages, int)
            or not (1 <= max_messages <= self.limits.max_receive)
        ):
            raise InvalidArgument(
                f"{self.name}: max_messages must be 1..{self.limits.max_receive}, got {max_messages!r}",
                resource=self.name,
            )
        vis = seconds(
            visibility_timeout,
            name="visibility_timeout",
            resource=self.name,
            maximum=self.limits.max_visibility_timeout,
        )
        wait_s = seconds(wait, name="wait", resource=self.name, maximum=self.limits.max_wait)
        return max_messages, self.visibility_default() if vis is None else vis, wait_s or 0.0

    def visibility_default(self) -> float:
        """Seconds a received message stays invisible when ``receive`` is not told (a provider
        whose queues carry their own setting, such as SQS, returns that)."""
        return self.default_visibility_timeout

    def _check_message(self, message: Message) -> Message:
        if not isinstance(message, Message) or not message.receipt:
            raise InvalidArgument(f"{self.name}: ack/nack takes a Message received from this queue", resource=self.name)
        return message

    # -- hooks -----------------------------------------------------------------------

    async def _send(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        return await self._call(self._send_blocking, data, attributes, delay)

    def _send_blocking(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        return bridge.run_sync(self._send(data, attributes, delay))

    async def _receive(self, max_messages: int, visibility_timeout: float, wait: float) -> list[Message]:
        return await self._call(self._receive_blocking, max_messages, visibility_timeout, wait)

    def _receive_blocking(self, max_messages: int, visibility_timeout: float, wait: float) -> list[Message]:
        return bridge.run_sync(self._receive(max_messages, visibility_timeout, wait))

    async def _ack(self, message: Message) -> None:
        await self._call(self._ack_blocking, message)

    def _ack_blocking(self, message: Message) -> None:
        bridge.run_sync(self._ack(message))

    async def _depth(self) -> int:
        if type(self)._depth_blocking is Queue._depth_blocking:
            raise NotSupported(f"{self.name}: this queue provider cannot count its messages", resource=self.name)
        return await self._call(self._depth_blocking)

    def _depth_blocking(self) -> int:
        if type(self)._depth is Queue._depth:
            raise NotSupported(f"{self.name}: this queue provider cannot count its messages", resource=self.name)
        return bridge.run_sync(self._depth())

    async def _peek(self, limit: int) -> list[Message]:
        if type(self)._peek_blocking is Queue._peek_blocking:
            raise NotSupported(f"{self.name}: this queue provider cannot peek without receiving", resource=self.name)
        return await self._call(self._peek_blocking, limit)

    def _peek_blocking(self, limit: int) -> list[Message]:
        if type(self)._peek is Queue._peek:
            raise NotSupported(f"{self.name}: this queue provider cannot peek without receiving", resource=self.name)
        return bridge.run_sync(self._peek(limit))

    async def _nack(self, message: Message, delay: float) -> None:
        await self._call(self._nack_blocking, message, delay)

    def _nack_blocking(self, message: Message, delay: float) -> None:
        bridge.run_sync(self._nack(message, delay))


class Topic(_Sender):
    """Publish once, deliver to every subscription (each a :class:`Queue`)."""

    kind: ClassVar[str] = "topic"
    required_hooks: ClassVar[tuple[str, ...]] = ("_publish",)

    async def publish(self, body: Any, *, attributes: Mapping[str, str] | None = None) -> str:
        """Publish a JSON value to all subscriptions; return the message id."""
        data, attrs = self._encode(body, attributes)
        return await self._publish(data, attrs)

    def subscription(self, name: str, *, max_attempts: int | None = None) -> Queue:
        """The queue of subscription ``name``, created on :meth:`Queue.create` if absent.

        ``max_attempts`` (deliveries before a message goes to the dead letters; the
        provider's default when ``None``) is checked here, once: ``_subscription`` hooks
        receive a valid name and ``None`` or a positive int."""
        check_key(name, max_bytes=200, resource=self.name, what="subscription name")
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
        ):
            raise InvalidArgument(
                f"{self.name}: max_attempts of subscription {name!r} must be a positive int, got {max_attempts!r}",
                resource=self.name,
            )
        return self._subscription(name, max_attempts)

    @property
    def sync(self) -> SyncTopic:
        return SyncTopic(self)

    def _subscription(self, name: str, max_attempts: int | None) -> Queue:
        raise NotImplementedError

    async def _publish(self, data: bytes, attributes: dict[str, str]) -> str:
        return await self._call(self._publish_blocking, data, attributes)

    def _publish_blocking(self, data: bytes, attributes: dict[str, str]) -> str:
        return bridge.run_sync(self._publish(data, attributes))


class SyncQueue:
    """Blocking face of a :class:`Queue`."""

    __slots__ = ("queue",)

    def __init__(self, queue: Queue) -> None:
        self.queue = queue

    def send(
        self, body: Any, *, delay: timedelta | float | None = None, attributes: Mapping[str, str] | None = None
    ) -> str:
        q = self.queue
        data, attrs = q._encode(body, attributes)
        wait = seconds(delay, name="delay", resource=q.name, maximum=q.limits.max_delay)
        return q._send_blocking(data, attrs, wait or 0.0)

    def receive(
        self,
        *,
        max_messages: int = 1,
        visibility_timeout: timedelta | float | None = None,
        wait: timedelta | float | None = None,
    ) -> list[Message]:
        q = self.queue
        return q._receive_blocking(*q._check_receive(max_messages, visibility_timeout, wait))

    def ack(self, message: Message) -> None:
        self.queue._ack_blocking(self.queue._check_message(message))

    def nack(self, message: Message, *, delay: timedelta | float | None = None) -> None:
        q = self.queue
        wait = seconds(delay, name="delay", resource=q.name, maximum=q.limits.max_visibility_timeout)
        q._nack_blocking(q._check_message(message), wait or 0.0)

    def depth(self) -> int:
        return self.queue._depth_blocking()

    def peek(self, limit: int = 10) -> list[Message]:
        return self.queue._peek_blocking(self.queue._check_peek(limit))

    def create(self) -> None:
        bridge.run_sync(self.queue.create())


class SyncTopic:
    """Blocking face of a :class:`Topic`."""

    __slots__ = ("topic",)

    def __init__(self, topic: Topic) -> None:
        self.topic = topic

    def publish(self, body: Any, *, attributes: Mapping[str, str] | None = None) -> str:
        t = self.topic
        data, attrs = t._encode(body, attributes)
        return t._publish_blocking(data, attrs)

    def create(self) -> None:
        bridge.run_sync(self.topic.create())


def poll_blocking(
    claim: Callable[[], list[Message]], wait: float, *, first: float = 0.02, most: float = 0.25
) -> list[Message]:
    """Call ``claim`` until it returns messages or ``wait`` seconds pass, sleeping ``first``
    seconds between tries and doubling up to ``most``: a long poll for stores that cannot block."""
    deadline = time.monotonic() + wait
    pause = first
    while True:
        messages = claim()
        left = deadline - time.monotonic()
        if messages or left <= 0:
            return messages
        time.sleep(min(pause, left))
        pause = min(pause * 2, most)


async def poll(
    claim: Callable[[], Awaitable[list[Message]] | list[Message]],
    wait: float,
    *,
    first: float = 0.02,
    most: float = 0.25,
) -> list[Message]:
    """:func:`poll_blocking` on the event loop; ``claim`` may be a coroutine function."""
    deadline = time.monotonic() + wait
    pause = first
    while True:
        got = claim()
        messages = await got if not isinstance(got, list) else got
        left = deadline - time.monotonic()
        if messages or left <= 0:
            return messages
        import asyncio  # here, not at import: asyncio is most of what importing overcast would cost

        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, most)
