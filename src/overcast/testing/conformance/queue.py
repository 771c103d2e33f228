"""The conformance suites of queues and topics (:class:`overcast.Queue`, :class:`overcast.Topic`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import pytest

import overcast
from overcast.errors import InvalidArgument, NotSupported
from overcast.resources.queue import Message, Queue, Topic

from .base import ConformanceSuite, eventually, eventually_sync, in_processes, lacks, requires

__all__ = ["QueueSuite", "TopicSuite"]

BODY = {"id": "u-1", "name": "Zoë 🚀", "tags": ["a", "b"], "n": 1.5, "none": None}


async def _receive_one(queue: Queue, *, what: str, visibility_timeout: float = 30.0) -> Message:
    async def attempt() -> Message | None:
        got = await queue.receive(visibility_timeout=visibility_timeout, wait=0.2)
        assert len(got) <= 1
        return got[0] if got else None

    return await eventually(attempt, what=what)


def _consume_worker(url: str) -> list[str]:
    """Receive and ack until the queue stays empty for a few polls; return the ids seen."""
    queue = overcast.open_queue(url)
    seen: list[str] = []
    empty = 0
    try:
        while empty < 4:
            batch = queue.sync.receive(max_messages=5, wait=0.2, visibility_timeout=120)
            empty = 0 if batch else empty + 1
            for message in batch:
                seen.append(message.id)
                queue.sync.ack(message)
    finally:
        queue.close()
    return seen


def _first(messages: list[Message]) -> Message | None:
    assert len(messages) <= 1
    return messages[0] if messages else None


class QueueSuite(ConformanceSuite):
    """Every semantic of :class:`~overcast.Queue`, on both faces.

    Provide ``make_url``: a callable giving the URL of a new, empty queue whose messages
    go to its dead letters after ``Queue.default_max_attempts`` deliveries.
    """

    kind_capabilities: ClassVar[frozenset[str]] = frozenset(
        {"delay", "dead_letter", "fifo", "multiprocess", "depth", "peek"}
    )
    visibility: ClassVar[float] = 1.0
    processes: ClassVar[int] = 3

    @pytest.fixture
    def make_url(self) -> Callable[[], str]:
        raise NotImplementedError("provide a make_url fixture: () -> URL of a new empty queue")

    @pytest.fixture
    def open_store(self) -> Callable[[str], Queue]:
        return overcast.open_queue

    @pytest.fixture
    def queue_url(self, make_url: Callable[[], str]) -> str:
        return make_url()

    @pytest.fixture
    def queue(self, queue_url: str, open_store: Callable[[str], Queue]) -> Iterator[Queue]:
        queue = open_store(queue_url)
        queue.sync.create()
        yield queue
        queue.close()

    def test_capabilities(self, queue: Queue) -> None:
        self.check_capabilities(queue)

    async def test_send_receive_ack(self, queue: Queue) -> None:
        assert await queue.receive() == []
        sent = await queue.send(BODY, attributes={"traceparent": "00-abc-def-01", "ünï": "✓"})
        assert isinstance(sent, str) and sent
        message = await _receive_one(queue, what="the message sent")
        assert (message.id, message.body, message.attempts) == (sent, BODY, 1)
        assert message.attributes == {"traceparent": "00-abc-def-01", "ünï": "✓"}
        await queue.ack(message)
        assert await queue.receive(wait=0.3) == []

    def test_send_receive_ack_sync(self, queue: Queue) -> None:
        q = queue.sync
        sent = q.send([1, "two", {"three": 3}])
        message = eventually_sync(lambda: _first(q.receive(wait=0.2)), what="the message sent")
        assert (message.id, message.body, message.attributes, message.attempts) == (
            sent,
            [1, "two", {"three": 3}],
            {},
            1,
        )
        q.ack(message)
        assert q.receive() == []

    async def test_json_bodies(self, queue: Queue) -> None:
        bodies: list[Any] = ["text", 7, None, [], {"nested": {"ü": ["🚀"]}}, True]
        ids = [await queue.send(body) for body in bodies]
        assert len(set(ids)) == len(ids)
        got: dict[str, Any] = {}
        while len(got) < len(bodies):
            for message in await queue.receive(max_messages=10, wait=0.5):
                got[message.id] = message.body
                await queue.ack(message)
        assert got == dict(zip(ids, bodies, strict=True))

    async def test_receive_many(self, queue: Queue) -> None:
        ids = {await queue.send({"i": i}) for i in range(15)}
        got: list[Message] = []

        async def more() -> bool:
            batch = await queue.receive(max_messages=10, wait=0.2)
            assert len(batch) <= 10
            got.extend(batch)
            return len(got) >= 15

        await eventually(more, what="15 messages")
        assert {m.id for m in got} == ids and len(got) == 15
        for message in got:
            await queue.ack(message)

    async def test_redelivery_after_the_visibility_timeout(self, queue: Queue) -> None:
        sent = await queue.send({"n": 1})
        first = await _receive_one(queue, what="the message", visibility_timeout=self.visibility)
        assert await queue.receive() == []
        second = await _receive_one(queue, what="the redelivery", visibility_timeout=30)
        assert (second.id, second.body, second.attempts) == (sent, {"n": 1}, 2)
        assert first.attempts == 1
        await queue.ack(second)
        assert await queue.receive(wait=0.3) == []

    async def test_nack(self, queue: Queue) -> None:
        sent = await queue.send({"n": 1})
        first = await _receive_one(queue, what="the message")
        await queue.nack(first)
        second = await _receive_one(queue, what="the message after nack")
        assert (second.id, second.attempts) == (sent, 2)
        await queue.nack(second, delay=self.visibility)
        assert await queue.receive() == []
        third = await _receive_one(queue, what="the message after a nack with delay")
        assert (third.id, third.attempts) == (sent, 3)
        await queue.ack(third)

    @requires("depth")
    async def test_depth_counts_what_waits_to_be_received(self, queue: Queue) -> None:
        assert await queue.depth() == 0
        for n in range(3):
            await queue.send({"n": n})
        if queue.supports("delay"):
            await queue.send({"n": "later"}, delay=600)

        async def depth_is(expected: int) -> bool:
            return await queue.depth() == expected

        await eventually(lambda: depth_is(3), what="a depth of 3 (the delayed message not counted)")
        taken = await _receive_one(queue, what="one message")
        await eventually(lambda: depth_is(2), what="a depth of 2 with one message in flight")
        await queue.ack(taken)
        assert queue.sync.depth() == 2

    @lacks("depth")
    async def test_depth_is_not_supported(self, queue: Queue) -> None:
        with pytest.raises(NotSupported):
            await queue.depth()

    @requires("peek")
    async def test_peek_shows_what_waits_without_receiving_it(self, queue: Queue) -> None:
        assert await queue.peek() == []
        sent = [await queue.send({"n": n}, attributes={"k": str(n)}) for n in range(3)]
        if queue.supports("delay"):
            await queue.send({"n": "later"}, delay=600)

        async def peeked(expected: int) -> list[Message] | None:
            found = await queue.peek(5)
            return found if len(found) == expected else None

        shown = await eventually(lambda: peeked(3), what="3 messages peeked (the delayed one not shown)")
        assert [m.id for m in shown] == sent and [m.body for m in shown] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert shown[0].attributes == {"k": "0"} and shown[0].attempts == 0 and shown[0].receipt == ""
        assert len(queue.sync.peek(2)) == 2
        first = await _receive_one(queue, what="the first message, not hidden by the peeks")
        assert (first.id, first.attempts) == (sent[0], 1)  # the peeks counted no delivery
        await eventually(lambda: peeked(2), what="2 messages peeked with one in flight")
        await queue.nack(first)
        again = await eventually(lambda: peeked(3), what="3 messages peeked once it is given back")
        assert {m.id: m.attempts for m in again}[sent[0]] == 1
        with pytest.raises(InvalidArgument):
            await queue.peek(0)

    @lacks("peek")
    async def test_peek_is_not_supported(self, queue: Queue) -> None:
        with pytest.raises(NotSupported):
            await queue.peek()

    def test_nack_sync(self, queue: Queue) -> None:
        q = queue.sync
        sent = q.send({"n": 1})
        first = eventually_sync(lambda: _first(q.receive(wait=0.2)), what="the message")
        q.nack(first)
        second = eventually_sync(lambda: _first(q.receive(wait=0.2)), what="the message after nack")
        assert (second.id, second.attempts) == (sent, 2)
        q.ack(second)

    def test_competing_consumers_get_each_message_once(self, queue: Queue) -> None:
        count = 40
        sent = {queue.sync.send({"i": i}) for i in range(count)}
        seen: list[str] = []
        lock = threading.Lock()

        def consume() -> None:
            while True:
                with lock:
                    if len(seen) >= count:
                        return
                for message in queue.sync.receive(max_messages=3, wait=0.1, visibility_timeout=60):
                    with lock:
                        seen.append(message.id)
                    queue.sync.ack(message)

        with ThreadPoolExecutor(4) as pool:
            for future in [pool.submit(consume) for _ in range(4)]:
                future.result(timeout=120)
        twice = sorted({m for m in seen if seen.count(m) > 1})
        assert sorted(seen) == sorted(sent), f"taken twice: {twice}; never taken: {sorted(sent - set(seen))}"

    @requires("multiprocess")
    def test_competing_consumer_processes_get_each_message_once(self, queue: Queue, queue_url: str) -> None:
        sent = {queue.sync.send({"i": i}) for i in range(60)}
        got = in_processes(_consume_worker, [(queue_url,)] * self.processes)
        seen = [mid for ids in got for mid in ids]
        assert sorted(seen) == sorted(sent)
        assert queue.sync.receive() == []

    @requires("delay")
    async def test_delay(self, queue: Queue) -> None:
        sent = await queue.send({"late": True}, delay=self.visibility)
        assert await queue.receive() == []
        message = await _receive_one(queue, what="the delayed message")
        assert (message.id, message.attempts) == (sent, 1)

    @lacks("delay")
    async def test_delay_not_supported(self, queue: Queue) -> None:
        with pytest.raises(NotSupported):
            await queue.send({"late": True}, delay=1)

    @requires("dead_letter")
    async def test_dead_letters_after_max_attempts(self, queue: Queue) -> None:
        sent = await queue.send({"poison": True}, attributes={"a": "b"})
        for attempt in range(1, queue.default_max_attempts + 1):
            message = await _receive_one(queue, what=f"delivery {attempt}")
            assert (message.id, message.attempts) == (sent, attempt)
            await queue.nack(message)
        assert await queue.receive(wait=0.3) == []
        dead = queue.dead_letters()
        try:
            letter = await _receive_one(dead, what="the dead letter")
            assert (letter.id, letter.body, letter.attributes) == (sent, {"poison": True}, {"a": "b"})
            await dead.ack(letter)
            assert await dead.receive() == []
        finally:
            dead.close()
        assert await queue.receive() == []

    @lacks("dead_letter")
    def test_dead_letters_not_supported(self, queue: Queue) -> None:
        with pytest.raises(NotSupported):
            queue.dead_letters()

    async def test_body_size_limit(self, queue: Queue) -> None:
        limit = queue.limits.max_body_bytes
        at_limit = "x" * (limit - 2)
        await queue.send(at_limit)
        with pytest.raises(InvalidArgument) as info:
            await queue.send("x" * (limit - 1))
        assert str(limit) in str(info.value)
        with pytest.raises(InvalidArgument):
            queue.sync.send("é" * (limit // 2))
        message = await _receive_one(queue, what="the message at the limit")
        assert message.body == at_limit
        await queue.ack(message)
        assert await queue.receive(wait=0.3) == []

    @pytest.mark.parametrize("body", [{1, 2}, object(), float("nan"), b"bytes"], ids=["set", "object", "nan", "bytes"])
    async def test_non_json_bodies_are_rejected(self, queue: Queue, body: Any) -> None:
        with pytest.raises(InvalidArgument):
            await queue.send(body)
        assert await queue.receive() == []

    async def test_invalid_arguments(self, queue: Queue) -> None:
        with pytest.raises(InvalidArgument):
            await queue.send({}, attributes={"n": 1})  # type: ignore[dict-item]
        with pytest.raises(InvalidArgument):
            await queue.send({}, attributes={f"a{i}": "v" for i in range(queue.limits.max_attributes + 1)})
        with pytest.raises(InvalidArgument):
            await queue.send({}, delay=-1)
        for count in (0, queue.limits.max_receive + 1):
            with pytest.raises(InvalidArgument):
                await queue.receive(max_messages=count)
        with pytest.raises(InvalidArgument):
            await queue.receive(visibility_timeout=-1)
        with pytest.raises(InvalidArgument):
            await queue.ack(Message("id", {}))
        assert await queue.receive() == []


class TopicSuite(ConformanceSuite):
    """Every semantic of :class:`~overcast.Topic`: each message reaches every subscription."""

    kind_capabilities: ClassVar[frozenset[str]] = frozenset({"delay", "dead_letter", "fifo", "multiprocess"})

    @pytest.fixture
    def make_url(self) -> Callable[[], str]:
        raise NotImplementedError("provide a make_url fixture: () -> URL of a new topic")

    @pytest.fixture
    def open_store(self) -> Callable[[str], Topic]:
        return overcast.open_topic

    @pytest.fixture
    def topic(self, make_url: Callable[[], str], open_store: Callable[[str], Topic]) -> Iterator[Topic]:
        topic = open_store(make_url())
        topic.sync.create()
        yield topic
        topic.close()

    def test_capabilities(self, topic: Topic) -> None:
        self.check_capabilities(topic)

    async def test_publish_reaches_every_subscription(self, topic: Topic) -> None:
        subs = [topic.subscription(name) for name in ("mail", "audit", "sub/ü")]
        for sub in subs:
            await sub.create()
        sent = await topic.publish(BODY, attributes={"k": "v"})
        for sub in subs:
            message = await _receive_one(sub, what=f"the message on {sub.name}")
            assert (message.id, message.body, message.attributes, message.attempts) == (sent, BODY, {"k": "v"}, 1)
            await sub.ack(message)
            assert await sub.receive() == []

    def test_publish_sync(self, topic: Topic) -> None:
        subs = [topic.subscription(name) for name in ("one", "two")]
        for sub in subs:
            sub.sync.create()
        ids = [topic.sync.publish({"i": i}) for i in range(3)]
        for sub in subs:
            got: dict[str, Any] = {}

            def drain(sub: Queue = sub, got: dict[str, Any] = got) -> bool:
                for message in sub.sync.receive(max_messages=10, wait=0.2):
                    got[message.id] = message.body
                    sub.sync.ack(message)
                return len(got) >= 3

            eventually_sync(drain, what=f"3 messages on {sub.name}")
            assert got == {mid: {"i": i} for i, mid in enumerate(ids)}

    async def test_subscriptions_are_independent(self, topic: Topic) -> None:
        fast, slow = topic.subscription("fast"), topic.subscription("slow")
        await fast.create()
        await slow.create()
        sent = await topic.publish({"n": 1})
        message = await _receive_one(fast, what="the message on fast")
        await fast.ack(message)
        other = await _receive_one(slow, what="the message on slow")
        assert other.id == sent
        await slow.nack(other)
        assert await fast.receive() == []

    @requires("dead_letter")
    async def test_subscription_max_attempts(self, topic: Topic) -> None:
        sub = topic.subscription("flaky", max_attempts=2)
        await sub.create()
        sent = await topic.publish({"poison": True})
        for attempt in (1, 2):
            message = await _receive_one(sub, what=f"delivery {attempt}")
            assert message.attempts == attempt
            await sub.nack(message)
        assert await sub.receive(wait=0.3) == []
        dead = sub.dead_letters()
        letter = await _receive_one(dead, what="the dead letter")
        assert letter.id == sent

    async def test_subscription_max_attempts_is_checked(self, topic: Topic) -> None:
        for bad in (0, -1, True, 2.5, "3"):
            with pytest.raises(InvalidArgument, match=r"max_attempts of subscription 'audit' must be a positive int"):
                topic.subscription("audit", max_attempts=bad)  # type: ignore[arg-type]

    async def test_publish_without_subscriptions(self, topic: Topic) -> None:
        first = await topic.publish({"n": 1})
        second = topic.sync.publish({"n": 2})
        assert isinstance(first, str) and isinstance(second, str) and first != second

    async def test_body_size_limit(self, topic: Topic) -> None:
        limit = topic.limits.max_body_bytes
        with pytest.raises(InvalidArgument) as info:
            await topic.publish("x" * (limit - 1))
        assert str(limit) in str(info.value)
        with pytest.raises(InvalidArgument):
            await topic.publish({"s": {1}})
        with pytest.raises(InvalidArgument):
            topic.subscription("")
