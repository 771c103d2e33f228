"""Queues and topics in process memory: ``memory://NAME``, with visibility timeouts, delay,
dead letters and fan-out as :mod:`overcast.providers.local.sqlite_queue` keeps them."""

from __future__ import annotations

import heapq
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import ClassVar

from ...errors import InvalidArgument
from ...resources.queue import Message, Queue, Topic, decode_body, poll
from ...resources.records import replace
from ...resources.url import ResourceURL
from ._memory import _POLL_FIRST, _POLL_MAX, _state, _versions

__all__ = ["MemoryQueue", "MemoryTopic"]


@dataclass(slots=True)
class _Envelope:
    id: str
    data: bytes
    attributes: dict[str, str]
    visible_at: float
    attempts: int = 0
    receipt: str | None = None


class _QueueState:
    """Messages by sequence, and a heap of (visible_at, seq) to find the next visible ones.

    Heap entries go stale when a message is acked or its visibility changes; they are
    skipped when they reach the top (an entry is current if its time is the message's).
    """

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.messages: dict[int, _Envelope] = {}
        self.ready: list[tuple[float, int]] = []
        self.receipts: dict[str, int] = {}
        self.dead: _QueueState | None = None

    def add(self, envelope: _Envelope) -> None:
        with self.lock:
            seq = next(_versions)
            self.messages[seq] = envelope
            heapq.heappush(self.ready, (envelope.visible_at, seq))
            self.lock.notify_all()

    def show_at(self, seq: int, visible_at: float) -> None:
        self.messages[seq].visible_at = visible_at
        heapq.heappush(self.ready, (visible_at, seq))

    def next_visible(self, now: float) -> tuple[int, _Envelope] | None:
        """Pop the first message visible at ``now`` (the caller makes it invisible or removes it)."""
        while self.ready and self.ready[0][0] <= now:
            visible_at, seq = heapq.heappop(self.ready)
            env = self.messages.get(seq)
            if env is not None and env.visible_at == visible_at:
                return seq, env
        return None

    def remove(self, seq: int) -> _Envelope:
        env = self.messages.pop(seq)
        if env.receipt is not None:
            self.receipts.pop(env.receipt, None)
        return env

    def dead_letters(self) -> _QueueState:
        with self.lock:
            if self.dead is None:
                self.dead = _QueueState()
            return self.dead


@dataclass
class _TopicState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    subscriptions: dict[str, _QueueState] = field(default_factory=dict)

    def subscribe(self, name: str) -> _QueueState:
        with self.lock:
            state = self.subscriptions.get(name)
            if state is None:
                state = self.subscriptions[name] = _QueueState()
            return state


class MemoryQueue(Queue):
    """A queue in memory with the clouds' delivery rules.

    Capabilities: ``delay``, ``dead_letter``. URL options: ``max_attempts``;
    ``subscription=NAME`` opens that subscription of the topic ``memory://HOST``;
    ``dead_letters=true`` opens the dead letters of the queue so named.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"delay", "dead_letter", "depth", "peek"})
    offload: ClassVar[bool] = False

    def __init__(
        self,
        url: ResourceURL | str | None = None,
        *,
        name: str | None = None,
        _topic: _TopicState | None = None,
    ) -> None:
        super().__init__(url, name=name)
        loc = self.location
        self._subscription = loc.option("subscription")
        self._dead = loc.option_bool("dead_letters", False, resource=self.name)
        attempts = loc.option_int("max_attempts", Queue.default_max_attempts, minimum=1, resource=self.name)
        self.max_attempts: int | None = None if self._dead else attempts
        self._topic: _TopicState | None = None
        self._queue: _QueueState | None = None
        if self._subscription is not None:
            self._topic = _topic or _state("topic", loc.host, _TopicState)
        else:
            queue = _state("queue", loc.host, _QueueState)
            self._queue = queue.dead_letters() if self._dead else queue

    def _q(self) -> _QueueState:
        """This queue's state; for a subscription, registering it with the topic on first use."""
        queue = self._queue
        if queue is None:
            assert self._topic is not None and self._subscription is not None
            queue = self._topic.subscribe(self._subscription)
            if self._dead:
                queue = queue.dead_letters()
            self._queue = queue
        return queue

    def _create_blocking(self) -> None:
        self._q()

    def dead_letters(self) -> MemoryQueue:
        """The queue of this queue's dead letters (sharing its name, so reopenable by URL)."""
        if self._dead:
            raise InvalidArgument(f"{self.name}: a dead-letter queue has no dead-letter queue", resource=self.name)
        options = {k: v for k, v in self.location.options.items() if k != "max_attempts"}
        options["dead_letters"] = "true"
        dead = MemoryQueue(
            replace(self.location, options=options), name=f"{self.name} (dead letters)", _topic=self._topic
        )
        if self._subscription is None:
            dead._queue = self._q().dead_letters()
        return dead

    def _send_blocking(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        message_id = str(uuid.uuid4())
        self._q().add(_Envelope(message_id, data, dict(attributes), time.monotonic() + delay))
        return message_id

    def _claim_locked(self, queue: _QueueState, max_messages: int, visibility_timeout: float) -> list[Message]:
        now = time.monotonic()
        claimed: list[Message] = []
        hidden: list[int] = []
        while len(claimed) < max_messages:
            found = queue.next_visible(now)
            if found is None:
                break
            seq, env = found
            if self.max_attempts is not None and env.attempts >= self.max_attempts:
                queue.remove(seq)
                queue.dead_letters().add(_Envelope(env.id, env.data, env.attributes, now))
                continue
            if env.receipt is not None:
                queue.receipts.pop(env.receipt, None)
            env.receipt = uuid.uuid4().hex
            env.attempts += 1
            queue.receipts[env.receipt] = seq
            hidden.append(seq)
            claimed.append(Message(env.id, decode_body(env.data), dict(env.attributes), env.attempts, env.receipt))
        for seq in hidden:  # after the loop: with a zero timeout they would be visible to it again
            queue.show_at(seq, now + visibility_timeout)
        return claimed

    def _depth_blocking(self) -> int:
        queue = self._q()
        now = time.monotonic()
        limit = self.max_attempts if self.max_attempts is not None else 2**62
        with queue.lock:
            return sum(1 for env in queue.messages.values() if env.visible_at <= now and env.attempts < limit)

    def _peek_blocking(self, limit: int) -> list[Message]:
        queue = self._q()
        now = time.monotonic()
        cap = self.max_attempts if self.max_attempts is not None else 2**62
        with queue.lock:
            waiting = sorted(
                (env.visible_at, seq, env)
                for seq, env in queue.messages.items()
                if env.visible_at <= now and env.attempts < cap
            )
            return [
                Message(env.id, decode_body(env.data), dict(env.attributes), env.attempts)
                for _, _, env in waiting[:limit]
            ]

    def _claim(self, max_messages: int, visibility_timeout: float) -> list[Message]:
        queue = self._q()
        with queue.lock:
            return self._claim_locked(queue, max_messages, visibility_timeout)

    def _receive_blocking(self, max_messages: int, visibility_timeout: float, wait: float) -> list[Message]:
        queue = self._q()
        deadline = time.monotonic() + wait
        with queue.lock:
            while True:
                messages = self._claim_locked(queue, max_messages, visibility_timeout)
                left = deadline - time.monotonic()
                if messages or left <= 0:
                    return messages
                # Woken by a send; the cap catches messages whose visibility or delay ran out.
                queue.lock.wait(min(left, _POLL_MAX))

    async def _receive(self, max_messages: int, visibility_timeout: float, wait: float) -> list[Message]:
        return await poll(
            lambda: self._claim(max_messages, visibility_timeout), wait, first=_POLL_FIRST, most=_POLL_MAX
        )

    def _find(self, queue: _QueueState, message: Message) -> int | None:
        seq = queue.receipts.get(message.receipt)
        env = None if seq is None else queue.messages.get(seq)
        return seq if env is not None and env.id == message.id else None

    def _ack_blocking(self, message: Message) -> None:
        queue = self._q()
        with queue.lock:
            seq = self._find(queue, message)
            if seq is not None:
                queue.remove(seq)

    def _nack_blocking(self, message: Message, delay: float) -> None:
        queue = self._q()
        with queue.lock:
            seq = self._find(queue, message)
            if seq is not None:
                queue.show_at(seq, time.monotonic() + delay)
                queue.lock.notify_all()


class MemoryTopic(Topic):
    """A topic in memory: each message is copied to every subscription that exists.

    Capabilities: ``delay``, ``dead_letter`` (those of its subscriptions).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"delay", "dead_letter"})
    offload: ClassVar[bool] = False

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self._data = _state("topic", self.location.host, _TopicState)
        self.location.option_int("max_attempts", None, minimum=1, resource=self.name)  # fails at open, not later

    def _subscription(self, name: str, max_attempts: int | None) -> MemoryQueue:
        options = dict(self.location.options)
        options["subscription"] = name
        if max_attempts is not None:
            options["max_attempts"] = str(max_attempts)
        location = replace(self.location, options=options)
        return MemoryQueue(location, name=f"{self.name}/{name}", _topic=self._data)

    def _publish_blocking(self, data: bytes, attributes: dict[str, str]) -> str:
        message_id = str(uuid.uuid4())
        now = time.monotonic()
        with self._data.lock:
            for queue in self._data.subscriptions.values():
                queue.add(_Envelope(message_id, data, dict(attributes), now))
        return message_id


# -- cache -----------------------------------------------------------------------------
