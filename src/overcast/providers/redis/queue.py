"""``redis://HOST:PORT/DB`` as a durable queue on a Redis Stream with a consumer group.

Keys, under the resource's hash tag ``{NAME}`` (``{NAME}:dead`` for its dead letters):

- ``…:s`` — the stream; each entry holds the message id, body and attributes. Consumers
  read it through the consumer group ``overcast`` (``XREADGROUP``), so each entry goes to
  one consumer and stays in the group's pending-entries list until acked (``XACK``).
- ``…:flight`` — a sorted set of delivered, unacked entries by the time they become
  visible again (the visibility timeout). A receive first claims (``XCLAIM``) entries whose
  time has come, then reads new ones; all in one Lua script, so consumers never collide.
- ``…:att`` / ``…:rcpt`` — delivery counts and the current delivery's receipt per entry:
  an ack or nack with an older receipt changes nothing.
- ``…:delayed`` / ``…:held`` — messages sent with a delay, by due time, moved into the
  stream by the first receive after they are due.

After ``max_attempts`` deliveries (option, default 5) an entry due again moves to the
dead-letter stream instead. Messages survive a restart as far as Redis persists (AOF).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any, ClassVar

from redis import exceptions as redis_errors

from ...errors import InvalidArgument
from ...resources.keys import encode_key
from ...resources.queue import Message, Queue, Topic, decode_body, poll_blocking
from ...resources.records import replace
from ...resources.url import ResourceURL
from ._client import REDIS_ERRORS, client, error, namespace

__all__ = ["RedisQueue", "RedisTopic"]

GROUP = "overcast"

# KEYS: stream, delayed, held, flight, attempts, receipts, dead stream
# ARGV: now ms, visibility ms, count, max attempts (0: none), consumer, receipt prefix
_RECEIVE = """
local now = tonumber(ARGV[1])
local vis = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local maxa = tonumber(ARGV[4])
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, mid in ipairs(due) do
  local held = redis.call('HMGET', KEYS[3], mid .. ':b', mid .. ':a')
  if held[1] then
    redis.call('XADD', KEYS[1], '*', 'id', mid, 'b', held[1], 'a', held[2])
  end
  redis.call('HDEL', KEYS[3], mid .. ':b', mid .. ':a')
  redis.call('ZREM', KEYS[2], mid)
end
local out = {}
local function forget(eid)
  redis.call('ZREM', KEYS[4], eid)
  redis.call('HDEL', KEYS[5], eid)
  redis.call('HDEL', KEYS[6], eid)
end
local function hand_out(eid, fields)
  local attempts = redis.call('HINCRBY', KEYS[5], eid, 1)
  local receipt = ARGV[6] .. ':' .. eid
  redis.call('HSET', KEYS[6], eid, receipt)
  redis.call('ZADD', KEYS[4], now + vis, eid)
  table.insert(out, {eid, fields, attempts, receipt})
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, count)
for _, eid in ipairs(expired) do
  local entry = redis.call('XRANGE', KEYS[1], eid, eid)
  if #entry == 0 then
    forget(eid)
  else
    local attempts = tonumber(redis.call('HGET', KEYS[5], eid) or '0')
    if maxa > 0 and attempts >= maxa then
      redis.call('XADD', KEYS[7], '*', unpack(entry[1][2]))
      redis.call('XACK', KEYS[1], 'overcast', eid)
      redis.call('XDEL', KEYS[1], eid)
      forget(eid)
    else
      redis.call('XCLAIM', KEYS[1], 'overcast', ARGV[5], 0, eid, 'JUSTID')
      hand_out(eid, entry[1][2])
    end
  end
end
if #out < count then
  local read = redis.call('XREADGROUP', 'GROUP', 'overcast', ARGV[5], 'COUNT', count - #out, 'STREAMS', KEYS[1], '>')
  if read then
    for _, entry in ipairs(read[1][2]) do
      hand_out(entry[1], entry[2])
    end
  end
end
return out
"""

# KEYS: stream, flight, attempts, receipts; ARGV: entry id, receipt
_ACK = """
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('XACK', KEYS[1], 'overcast', ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
"""

# KEYS: flight, receipts; ARGV: entry id, receipt, visible again at (ms)
_NACK = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
return 1
"""

# KEYS: stream, flight; ARGV: now ms
_DEPTH = """
return redis.call('XLEN', KEYS[1]) - redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf')
"""

# KEYS: stream, flight, attempts; ARGV: now ms, limit, max attempts (0: none)
# The entries not in flight (never delivered, or their visibility timeout over), oldest first.
_PEEK = """
local now, limit, maxa = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out, cursor = {}, '-'
for _ = 1, 50 do
  local entries = redis.call('XRANGE', KEYS[1], cursor, '+', 'COUNT', 100)
  if #entries == 0 then break end
  for _, entry in ipairs(entries) do
    local hidden = tonumber(redis.call('ZSCORE', KEYS[2], entry[1]) or '0')
    local attempts = tonumber(redis.call('HGET', KEYS[3], entry[1]) or '0')
    if hidden <= now and (maxa == 0 or attempts < maxa) then
      table.insert(out, {entry[1], entry[2], attempts, ''})
      if #out >= limit then return out end
    end
  end
  cursor = '(' .. entries[#entries][1]
end
return out
"""


class RedisQueue(Queue):
    """A queue on a Redis Stream. Options: ``prefix`` (default: the resource's name),
    ``max_attempts`` (deliveries before dead-lettering, default 5).

    Capabilities: ``delay``, ``dead_letter``, ``multiprocess``, ``depth``, ``peek``.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"delay", "dead_letter", "multiprocess", "depth", "peek"})
    offload: ClassVar[bool] = True
    upstream: ClassVar[str] = "redis"

    def __init__(
        self, url: ResourceURL | str | None = None, *, name: str | None = None, base: str | None = None
    ) -> None:
        super().__init__(url, name=name)
        loc = self.location
        self._client = client(loc)
        self._dead = loc.option_bool("dead_letters", False, resource=self.name)
        base = base or "{" + namespace(loc, name, "queue") + "}"  # a topic's subscriptions share its tag
        self._base = base
        own = f"{base}:dead" if self._dead else base
        self._stream, self._flight = f"{own}:s", f"{own}:flight"
        self._attempts, self._receipts = f"{own}:att", f"{own}:rcpt"
        self._delayed, self._held = f"{own}:delayed", f"{own}:held"
        self._dead_stream = f"{base}:dead:s"
        attempts = loc.option_int("max_attempts", Queue.default_max_attempts, minimum=1, resource=self.name)
        self.max_attempts: int | None = None if self._dead else attempts
        self._consumer = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._grouped = False
        self._receive_script = self._client.register_script(_RECEIVE)
        self._ack_script = self._client.register_script(_ACK)
        self._nack_script = self._client.register_script(_NACK)
        self._depth_script = self._client.register_script(_DEPTH)
        self._peek_script = self._client.register_script(_PEEK)

    def dead_letters(self) -> RedisQueue:
        """The queue of this queue's dead letters (``{NAME}:dead``)."""
        if self._dead:
            raise InvalidArgument(f"{self.name}: a dead-letter queue has no dead-letter queue", resource=self.name)
        options = {k: v for k, v in self.location.options.items() if k != "max_attempts"}
        options["dead_letters"] = "true"
        return RedisQueue(replace(self.location, options=options), name=f"{self.name} (dead letters)", base=self._base)

    def close(self) -> None:
        return None  # the client is shared by every resource on the same server

    def _ping_blocking(self) -> None:
        try:
            self._client.ping()
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, "PING") from exc

    def _create_blocking(self) -> None:
        try:
            self._client.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except redis_errors.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise error(exc, self.name, "XGROUP CREATE") from exc
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, "XGROUP CREATE") from exc
        self._grouped = True

    def _send_blocking(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        message_id = str(uuid.uuid4())
        attrs = json.dumps(attributes, separators=(",", ":")) if attributes else "{}"
        try:
            if delay > 0:
                with self._client.pipeline(transaction=True) as pipe:
                    pipe.hset(self._held, mapping={f"{message_id}:b": data, f"{message_id}:a": attrs})
                    pipe.zadd(self._delayed, {message_id: int((time.time() + delay) * 1000)})
                    pipe.execute()
            else:
                self._client.xadd(self._stream, {"id": message_id, "b": data, "a": attrs})
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, "send") from exc
        return message_id

    def _claim(self, max_messages: int, visibility_timeout: float) -> list[Message]:
        if not self._grouped:
            self._create_blocking()
        keys = [
            self._stream,
            self._delayed,
            self._held,
            self._flight,
            self._attempts,
            self._receipts,
            self._dead_stream,
        ]
        args: list[str | int] = [
            int(time.time() * 1000),
            int(visibility_timeout * 1000),
            max_messages,
            self.max_attempts or 0,
            self._consumer,
            uuid.uuid4().hex,
        ]
        try:
            rows = self._receive_script(keys=keys, args=args)
        except redis_errors.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise error(exc, self.name, "receive") from exc
            self._create_blocking()  # the stream was deleted (FLUSHDB): make it again
            rows = self._receive_script(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, "receive") from exc
        return [self._message(row) for row in rows]

    def _message(self, row: list[Any]) -> Message:
        entry, flat, attempts, receipt = row
        fields = {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}
        return Message(
            fields["id"].decode(),
            decode_body(fields["b"]),
            json.loads(fields.get("a") or b"{}"),
            int(attempts),
            f"{entry.decode()}|{receipt.decode()}",
        )

    def _receive_blocking(self, max_messages: int, visibility_timeout: float, wait: float) -> list[Message]:
        return poll_blocking(lambda: self._claim(max_messages, visibility_timeout), wait)

    def _split(self, message: Message) -> tuple[str, str]:
        entry, _, receipt = message.receipt.partition("|")
        if not entry or not receipt:
            raise InvalidArgument(f"{self.name}: ack/nack takes a Message received from this queue", resource=self.name)
        return entry, receipt

    def _ack_blocking(self, message: Message) -> None:
        entry, receipt = self._split(message)
        try:
            self._ack_script(keys=[self._stream, self._flight, self._attempts, self._receipts], args=[entry, receipt])
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"ack of message {message.id}") from exc

    def _nack_blocking(self, message: Message, delay: float) -> None:
        entry, receipt = self._split(message)
        try:
            self._nack_script(
                keys=[self._flight, self._receipts], args=[entry, receipt, int((time.time() + delay) * 1000)]
            )
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"nack of message {message.id}") from exc

    def _depth_blocking(self) -> int:
        try:
            return int(self._depth_script(keys=[self._stream, self._flight], args=[int(time.time() * 1000)]))
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, "depth") from exc

    def _peek_blocking(self, limit: int) -> list[Message]:
        keys = [self._stream, self._flight, self._attempts]
        try:
            rows = self._peek_script(keys=keys, args=[int(time.time() * 1000), limit, self.max_attempts or 0])
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, "peek") from exc
        return [replace(self._message(row), receipt="") for row in rows]


# KEYS: the set of subscription streams. ARGV: message id, body, attributes.
# Every stream shares the topic's hash tag, so the script stays on one cluster slot.
_PUBLISH = """
local streams = redis.call('SMEMBERS', KEYS[1])
for _, stream in ipairs(streams) do
  redis.call('XADD', stream, '*', 'id', ARGV[1], 'b', ARGV[2], 'a', ARGV[3])
end
return #streams
"""


class _Subscription(RedisQueue):
    """A subscription's queue: created, it joins its topic's set of streams."""

    _subscriptions = ""

    def _create_blocking(self) -> None:
        super()._create_blocking()
        try:
            self._client.sadd(self._subscriptions, self._stream)
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, "SADD subscription") from exc


class RedisTopic(Topic):
    """A topic whose subscriptions are Redis Stream queues under its hash tag ``{NAME}``.

    ``publish`` is one Lua script that appends the message to every subscription's stream,
    so each subscription created before the publish gets it exactly once, atomically. A
    subscription ``S`` is a :class:`RedisQueue` on ``{NAME}:sub:S`` (``S`` escaped), with its
    own visibility timeouts, delays and dead letters; it joins the topic on ``create()``.
    Options: ``prefix`` (default: the resource's name), ``max_attempts`` (default for
    subscriptions). Capabilities: ``delay``, ``dead_letter``, ``multiprocess``.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"delay", "dead_letter", "multiprocess"})
    offload: ClassVar[bool] = True
    upstream: ClassVar[str] = "redis"

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self._client = client(self.location)
        self._base = "{" + namespace(self.location, name, "topic") + "}"
        self._subscriptions = f"{self._base}:subs"
        self._publish_script = self._client.register_script(_PUBLISH)
        self.location.option_int("max_attempts", None, minimum=1, resource=self.name)  # fails at open, not later

    def _ping_blocking(self) -> None:
        try:
            self._client.ping()
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, "PING") from exc

    def _subscription(self, name: str, max_attempts: int | None) -> Queue:
        options = dict(self.location.options)
        if max_attempts is not None:
            options["max_attempts"] = str(max_attempts)
        queue = _Subscription(
            replace(self.location, options=options),
            name=f"{self.name}/{name}",
            base=f"{self._base}:sub:{encode_key(name)}",
        )
        queue._subscriptions = self._subscriptions
        return queue

    def _publish_blocking(self, data: bytes, attributes: dict[str, str]) -> str:
        message_id = str(uuid.uuid4())
        attrs = json.dumps(attributes, separators=(",", ":")) if attributes else "{}"
        try:
            self._publish_script(keys=[self._subscriptions], args=[message_id, data, attrs])
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, "publish") from exc
        return message_id

    def close(self) -> None:
        return None  # the client is shared by every resource on the same server
