"""``postgresql://HOST:PORT/DBNAME?queue=NAME`` queues and ``?topic=NAME`` topics.

Messages are rows of ``overcast_messages``. A receive claims rows with ``FOR UPDATE SKIP
LOCKED``: consumers in any number of processes each get different messages and never
wait on one another. A claimed row becomes invisible until its visibility timeout; an
ack deletes it (only with the current delivery's receipt). The same statement moves the
rows it picked that used up ``max_attempts`` to the dead-letter queue ``NAME#dead``. A
topic copies each message to the queue of every subscription (``TOPIC/SUBSCRIPTION``) in one
``INSERT ... SELECT``.

As in the KV store, each operation exists blocking (``handle.sync``) and async, with the
same statements.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, ClassVar

from psycopg.types.json import Jsonb

from ...errors import InvalidArgument
from ...resources.queue import Message, Queue, Topic, decode_body, poll, poll_blocking
from ...resources.records import replace
from ...resources.url import ResourceURL
from ._db import PostgresResource, resource_name

__all__ = ["PostgresQueue", "PostgresTopic"]

_SEND = "INSERT INTO overcast_messages (queue, id, body, attributes, visible_at) VALUES (%s, %s, %s, %s, now() + %s)"
# One statement claims the next messages and, of those picked, moves the ones that used up
# their attempts to the dead-letter queue (returned with a NULL id, to tell them apart):
# only the rows picked are looked at, however many wait behind them.
_CLAIM = (
    "WITH picked AS (SELECT seq, attempts FROM overcast_messages WHERE queue = %(queue)s AND visible_at <= now()"
    " ORDER BY visible_at, seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED),"
    " dead AS (UPDATE overcast_messages m SET queue = %(dead)s, attempts = 0, receipt = NULL, visible_at = now()"
    " FROM picked WHERE m.seq = picked.seq AND picked.attempts >= %(max)s RETURNING m.seq),"
    " claimed AS (UPDATE overcast_messages m SET visible_at = now() + %(timeout)s, attempts = m.attempts + 1,"
    " receipt = md5(random()::text || clock_timestamp()::text)"
    " FROM picked WHERE m.seq = picked.seq AND picked.attempts < %(max)s"
    " RETURNING m.seq, m.id, m.body, m.attributes, m.attempts, m.receipt)"
    " SELECT seq, id, body, attributes, attempts, receipt FROM claimed"
    " UNION ALL SELECT seq, NULL, NULL, NULL, NULL, NULL FROM dead"
)
_ACK = "DELETE FROM overcast_messages WHERE seq = %s AND receipt = %s"
_NACK = "UPDATE overcast_messages SET visible_at = now() + %s WHERE seq = %s AND receipt = %s"
_DEPTH = "SELECT count(*) FROM overcast_messages WHERE queue = %s AND visible_at <= now() AND attempts < %s"
_SUBSCRIBE = "INSERT INTO overcast_subscriptions (topic, name) VALUES (%s, %s) ON CONFLICT DO NOTHING"
_PUBLISH = (
    "INSERT INTO overcast_messages (queue, id, body, attributes, visible_at)"
    " SELECT topic || '/' || name, %s, %s, %s, now() FROM overcast_subscriptions WHERE topic = %s"
)


def _messages(rows: list[Any]) -> tuple[list[Message], bool]:
    """The messages claimed, in order, and whether some rows picked went to dead letters."""
    rows.sort(key=lambda row: row[0])
    messages = [
        Message(mid, decode_body(bytes(body)), dict(attrs), attempts, f"{seq}:{receipt}")
        for seq, mid, body, attrs, attempts, receipt in rows
        if mid is not None
    ]
    return messages, len(messages) < len(rows)


def _max_attempts(location: ResourceURL, resource: str) -> int:
    return location.option_int("max_attempts", Queue.default_max_attempts, minimum=1, resource=resource)


class PostgresQueue(PostgresResource, Queue):
    """A queue in PostgreSQL. Options: ``queue`` (default: the resource's name),
    ``max_attempts`` (5), and the connection options of the KV store.

    Capabilities: ``delay``, ``dead_letter``, ``multiprocess``, ``depth``.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"delay", "dead_letter", "multiprocess", "depth"})
    offload: ClassVar[bool] = True
    upstream: ClassVar[str] = "postgres"

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        loc = self.location
        self._dead = loc.option_bool("dead_letters", False, resource=self.name)
        subscription = loc.option("subscription")
        if subscription is not None:
            base = f"{resource_name(loc, None, 'topic', 'topic')}/{subscription}"
        else:
            base = resource_name(loc, name, "queue", "queue")
        self._base = base
        self._queue = f"{base}#dead" if self._dead else base
        self.max_attempts: int | None = None if self._dead else _max_attempts(loc, self.name)

    def dead_letters(self) -> PostgresQueue:
        """The queue of this queue's dead letters (``NAME#dead``)."""
        if self._dead:
            raise InvalidArgument(f"{self.name}: a dead-letter queue has no dead-letter queue", resource=self.name)
        options = {k: v for k, v in self.location.options.items() if k != "max_attempts"}
        options["dead_letters"] = "true"
        if "subscription" not in options:
            options["queue"] = self._base
        return PostgresQueue(replace(self.location, options=options), name=f"{self.name} (dead letters)")

    def _split(self, message: Message) -> tuple[int, str]:
        seq, _, receipt = message.receipt.partition(":")
        if not seq.isdigit() or not receipt:
            raise InvalidArgument(f"{self.name}: ack/nack takes a Message received from this queue", resource=self.name)
        return int(seq), receipt

    def _depth_limit(self) -> int:
        return self.max_attempts if self.max_attempts is not None else 2**31 - 1

    # -- blocking (handle.sync) ---------------------------------------------------------

    def _send_blocking(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        message_id = str(uuid.uuid4())
        with self._conn("send") as conn:
            conn.execute(_SEND, (self._queue, message_id, data, Jsonb(attributes), timedelta(seconds=delay)))
        return message_id

    def _claim_params(self, max_messages: int, visibility_timeout: float) -> dict[str, Any]:
        return {
            "queue": self._queue,
            "limit": max_messages,
            "dead": f"{self._queue}#dead",
            "max": self._depth_limit(),
            "timeout": timedelta(seconds=visibility_timeout),
        }

    def _claim(self, max_messages: int, visibility_timeout: float) -> list[Message]:
        params = self._claim_params(max_messages, visibility_timeout)
        with self._conn("receive") as conn:
            while True:
                messages, dead = _messages(conn.execute(_CLAIM, params).fetchall())
                if messages or not dead:  # only dead letters picked: those behind them are due
                    return messages

    def _receive_blocking(self, max_messages: int, visibility_timeout: float, wait: float) -> list[Message]:
        return poll_blocking(lambda: self._claim(max_messages, visibility_timeout), wait)

    def _ack_blocking(self, message: Message) -> None:
        seq, receipt = self._split(message)
        with self._conn(f"ack message {message.id}") as conn:
            conn.execute(_ACK, (seq, receipt))

    def _nack_blocking(self, message: Message, delay: float) -> None:
        seq, receipt = self._split(message)
        with self._conn(f"nack message {message.id}") as conn:
            conn.execute(_NACK, (timedelta(seconds=delay), seq, receipt))

    def _depth_blocking(self) -> int:
        with self._conn("count messages") as conn:
            row = conn.execute(_DEPTH, (self._queue, self._depth_limit())).fetchone()
        return int(row[0]) if row else 0

    # -- async, on the running loop --------------------------------------------------------

    async def _send(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        message_id = str(uuid.uuid4())
        async with self._aconn("send") as conn:
            await conn.execute(_SEND, (self._queue, message_id, data, Jsonb(attributes), timedelta(seconds=delay)))
        return message_id

    async def _aclaim(self, max_messages: int, visibility_timeout: float) -> list[Message]:
        params = self._claim_params(max_messages, visibility_timeout)
        async with self._aconn("receive") as conn:
            while True:
                messages, dead = _messages(await (await conn.execute(_CLAIM, params)).fetchall())
                if messages or not dead:
                    return messages

    async def _receive(self, max_messages: int, visibility_timeout: float, wait: float) -> list[Message]:
        return await poll(lambda: self._aclaim(max_messages, visibility_timeout), wait)

    async def _ack(self, message: Message) -> None:
        seq, receipt = self._split(message)
        async with self._aconn(f"ack message {message.id}") as conn:
            await conn.execute(_ACK, (seq, receipt))

    async def _nack(self, message: Message, delay: float) -> None:
        seq, receipt = self._split(message)
        async with self._aconn(f"nack message {message.id}") as conn:
            await conn.execute(_NACK, (timedelta(seconds=delay), seq, receipt))

    async def _depth(self) -> int:
        async with self._aconn("count messages") as conn:
            row = await (await conn.execute(_DEPTH, (self._queue, self._depth_limit()))).fetchone()
        return int(row[0]) if row else 0


class PostgresTopic(PostgresResource, Topic):
    """A topic in PostgreSQL: each message is copied to every subscription's queue.

    Options: ``topic`` (default: the resource's name). Capabilities: those of its queues.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"delay", "dead_letter", "multiprocess"})
    offload: ClassVar[bool] = True
    upstream: ClassVar[str] = "postgres"

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self._topic = resource_name(self.location, name, "topic", "topic")
        _max_attempts(self.location, self.name)  # a bad option fails now, not at the first subscription

    def _subscription(self, name: str, max_attempts: int | None) -> PostgresQueue:
        options = dict(self.location.options)
        options["topic"] = self._topic
        options["subscription"] = name
        if max_attempts is not None:
            options["max_attempts"] = str(max_attempts)
        queue = _SubscriptionQueue(replace(self.location, options=options), name=f"{self.name}/{name}")
        queue._register = (self, name)
        return queue

    def _subscribe(self, name: str) -> None:
        with self._conn(f"create subscription {name!r}") as conn:
            conn.execute(_SUBSCRIBE, (self._topic, name))

    async def _asubscribe(self, name: str) -> None:
        async with self._aconn(f"create subscription {name!r}") as conn:
            await conn.execute(_SUBSCRIBE, (self._topic, name))

    def _publish_blocking(self, data: bytes, attributes: dict[str, str]) -> str:
        message_id = str(uuid.uuid4())
        with self._conn("publish") as conn:
            conn.execute(_PUBLISH, (message_id, data, Jsonb(attributes), self._topic))
        return message_id

    async def _publish(self, data: bytes, attributes: dict[str, str]) -> str:
        message_id = str(uuid.uuid4())
        async with self._aconn("publish") as conn:
            await conn.execute(_PUBLISH, (message_id, data, Jsonb(attributes), self._topic))
        return message_id


class _SubscriptionQueue(PostgresQueue):
    """A subscription's queue: registered with its topic on first use, so publishing reaches it."""

    _register: tuple[PostgresTopic, str] | None = None

    def _ensure(self) -> None:
        pending = self._register
        if pending is not None:
            topic, name = pending
            topic._subscribe(name)
            self._register = None

    async def _aensure(self) -> None:
        pending = self._register
        if pending is not None:
            topic, name = pending
            await topic._asubscribe(name)
            self._register = None

    def _create_blocking(self) -> None:
        super()._create_blocking()
        self._ensure()

    async def create(self) -> None:
        await super().create()
        await self._aensure()

    def _claim(self, max_messages: int, visibility_timeout: float) -> list[Message]:
        self._ensure()
        return super()._claim(max_messages, visibility_timeout)

    async def _aclaim(self, max_messages: int, visibility_timeout: float) -> list[Message]:
        await self._aensure()
        return await super()._aclaim(max_messages, visibility_timeout)

    def _send_blocking(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        self._ensure()
        return super()._send_blocking(data, attributes, delay)

    async def _send(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        await self._aensure()
        return await super()._send(data, attributes, delay)
