"""``redis://HOST:PORT/DB`` as a key-value store of JSON documents with versions.

Layout, all under the resource's hash tag ``{NAME}`` (one Redis Cluster slot):

- ``{NAME}:i:KEY`` — a hash with the document (``v``), its version (``ver``) and its expiry
  in Unix milliseconds (``exp``); a TTL is the key's own ``PEXPIREAT``, so Redis drops it.
  A write only if newer also keeps the document's order (``o``), which the next one compares.
- ``{NAME}:idx`` — a sorted set of every key, all with score 0, so ``ZRANGEBYLEX`` lists
  keys in byte order: a prefix scan reads a range of it, never ``KEYS`` or ``SCAN``.
  Entries of expired documents are pruned as scans meet them.

Conditional writes (``if_version``, ``if_absent``) and deletes run as Lua scripts, so the
check and the write are one atomic step on the server; so does ``put_with_log`` (a
write only if newer and, if it was made, a second key's plain put: one ``EVALSHA``).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from ...errors import Conflict
from ...resources.kv import ORDER_FIELD, Item, KeyValueStore, LogEntry, Page
from ...resources.url import ResourceURL
from ._client import REDIS_ERRORS, LoopClient, client, error, namespace, run_script

__all__ = ["RedisKeyValueStore"]

_PUT = """
local cur = redis.call('HGET', KEYS[1], 'ver')
if ARGV[1] == 'absent' then
  if cur then return {0, cur} end
elseif ARGV[1] == 'version' then
  if cur ~= ARGV[2] then return {0, cur or ''} end
end
redis.call('DEL', KEYS[1])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'v', ARGV[3], 'ver', ARGV[4], 'exp', ARGV[5])
  redis.call('PEXPIREAT', KEYS[1], ARGV[5])
else
  redis.call('HSET', KEYS[1], 'v', ARGV[3], 'ver', ARGV[4])
end
redis.call('ZADD', KEYS[2], 0, ARGV[6])
return {1, ARGV[4]}
"""

# put_if_newer: the stored document's order (its ORDER_FIELD string) is compared byte by byte
# (Lua's own '<' follows the server's locale). The script keeps the order it wrote in field
# ``o`` beside the document, so the next one reads it without decoding the document; a
# document without it (written by a plain put) is decoded with cjson.
_PUT_IF_NEWER = """
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local cur = redis.call('HMGET', KEYS[1], 'o', 'exp', 'ver')
if cur[3] and (not cur[2] or cur[2] == '' or tonumber(cur[2]) > tonumber(ARGV[5])) then
  local stored = cur[1]
  if not stored then
    local ok, doc = pcall(cjson.decode, redis.call('HGET', KEYS[1], 'v'))
    stored = ok and type(doc) == 'table' and doc[ARGV[7]]
  end
  if type(stored) == 'string' and not before(stored, ARGV[4]) then return 0 end
end
redis.call('DEL', KEYS[1])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'ver', ARGV[2], 'o', ARGV[4], 'exp', ARGV[3])
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
else
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'ver', ARGV[2], 'o', ARGV[4])
end
redis.call('ZADD', KEYS[2], 0, ARGV[6])
return 1
"""

# put_with_log: _PUT_IF_NEWER, then (only if it wrote) the log entry KEYS[3] as a plain put,
# at the document's version (a fresh random one: unique to this write, as an entry's must be)
_PUT_WITH_LOG = _PUT_IF_NEWER.replace(
    "return 1\n",
    """redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'v', ARGV[8], 'ver', ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[9])
return 1
""",
)

_DELETE = """
local cur = redis.call('HGET', KEYS[1], 'ver')
if ARGV[1] ~= '' and cur ~= ARGV[1] then return {-1, cur or ''} end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
if cur then return {1, ''} end
return {0, ''}
"""

_PRUNE = """
local removed = 0
for i, member in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[2] .. member) == 0 then
    removed = removed + redis.call('ZREM', KEYS[1], member)
  end
end
return removed
"""


def _expiry(raw: bytes | None) -> datetime | None:
    return None if not raw else datetime.fromtimestamp(int(raw) / 1000, UTC)


class RedisKeyValueStore(KeyValueStore):
    """JSON documents in Redis. Options: ``prefix`` (default: the resource's name).

    Capabilities: ``ttl``, ``ordered_scan`` (keys in UTF-8 byte order), ``multiprocess``,
    ``put_if_newer`` (a Lua script compares the stored document's order), ``put_with_log``
    (the same script also writes the log entry: one request, atomic).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"ttl", "ordered_scan", "multiprocess", "put_if_newer", "put_with_log"}
    )
    offload: ClassVar[bool] = True
    upstream: ClassVar[str] = "redis"

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self._client = client(self.location)
        self._async = LoopClient(self.location)
        tag = "{" + namespace(self.location, name, "kv") + "}"
        self._items = f"{tag}:i:"
        self._index = f"{tag}:idx"
        self._put_script = self._client.register_script(_PUT)
        self._delete_script = self._client.register_script(_DELETE)
        self._newer_script = self._client.register_script(_PUT_IF_NEWER)
        self._logged_script = self._client.register_script(_PUT_WITH_LOG)
        self._prune_script = self._client.register_script(_PRUNE)

    def _ping_blocking(self) -> None:
        try:
            self._client.ping()
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, "PING") from exc

    def close(self) -> None:
        return None  # the client is shared by every resource on the same server

    def _item(self, key: str, fields: list[Any]) -> Item | None:
        data, version, exp = fields
        if data is None or version is None:
            return None
        expires_at = _expiry(exp)
        if expires_at is not None and expires_at <= datetime.now(UTC):
            return None  # Redis removes it within moments; never show it meanwhile
        return Item(key, json.loads(data), version.decode(), expires_at)

    def _get_blocking(self, key: str) -> Item | None:
        try:
            fields = self._client.hmget(self._items + key, ["v", "ver", "exp"])
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"HMGET key {key!r}") from exc
        return self._item(key, fields)

    def _put_blocking(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        version, keys, args = self._put_request(key, data, if_version, if_absent, expires_at)
        try:
            done, current = self._put_script(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"put of key {key!r}") from exc
        return self._put_outcome(key, version, done, current, if_version, if_absent)

    def _put_request(
        self, key: str, data: bytes, if_version: str | None, if_absent: bool, expires_at: datetime | None
    ) -> tuple[str, list[str], list[Any]]:
        mode = "version" if if_version is not None else ("absent" if if_absent else "put")
        version = uuid.uuid4().hex
        exp = "" if expires_at is None else str(int(expires_at.timestamp() * 1000))
        return version, [self._items + key, self._index], [mode, if_version or "", data, version, exp, key]

    def _put_outcome(
        self, key: str, version: str, done: Any, current: Any, if_version: str | None, if_absent: bool
    ) -> str:
        if not done:
            if if_absent:
                raise Conflict(f"{self.name}: key {key!r} already exists", resource=self.name)
            found = "is absent" if not current else f"is at version {current.decode()}"
            raise Conflict(f"{self.name}: key {key!r} {found}, not at version {if_version}", resource=self.name)
        return version

    def _newer_request(
        self, key: str, data: bytes, order: str, expires_at: datetime | None
    ) -> tuple[str, list[str], list[Any]]:
        version = os.urandom(16).hex()
        exp = "" if expires_at is None else str(int(expires_at.timestamp() * 1000))
        now = str(time.time_ns() // 1_000_000)
        return version, [self._items + key, self._index], [data, version, exp, order, now, key, ORDER_FIELD]

    def _put_if_newer_blocking(
        self, key: str, value: dict[str, Any], data: bytes, order: str, expires_at: datetime | None
    ) -> str | None:
        version, keys, args = self._newer_request(key, data, order, expires_at)
        try:
            applied = self._newer_script(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"put of key {key!r}") from exc
        return version if applied else None

    async def _put_if_newer(
        self, key: str, value: dict[str, Any], data: bytes, order: str, expires_at: datetime | None
    ) -> str | None:
        version, keys, args = self._newer_request(key, data, order, expires_at)
        try:
            applied = await run_script(self._async(), self._newer_script, keys, args)
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"put of key {key!r}") from exc
        return version if applied else None

    def _logged_request(
        self, key: str, data: bytes, order: str, expires_at: datetime | None, log: LogEntry
    ) -> tuple[str, str, list[str], list[Any]]:
        version, keys, args = self._newer_request(key, data, order, expires_at)
        return version, version, [*keys, self._items + log.key], [*args, log.data, log.key]

    def _put_with_log_blocking(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        order: str,
        expires_at: datetime | None,
        log: LogEntry,
    ) -> tuple[str, str] | None:
        version, entry, keys, args = self._logged_request(key, data, order, expires_at, log)
        try:
            applied = self._logged_script(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"put of key {key!r} with its log entry") from exc
        return (version, entry) if applied else None

    async def _put_with_log(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        order: str,
        expires_at: datetime | None,
        log: LogEntry,
    ) -> tuple[str, str] | None:
        version, entry, keys, args = self._logged_request(key, data, order, expires_at, log)
        try:
            applied = await run_script(self._async(), self._logged_script, keys, args)
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"put of key {key!r} with its log entry") from exc
        return (version, entry) if applied else None

    def _delete_blocking(self, key: str, if_version: str | None) -> bool:
        try:
            outcome, current = self._delete_script(keys=[self._items + key, self._index], args=[if_version or "", key])
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"delete of key {key!r}") from exc
        return self._delete_outcome(key, outcome, current, if_version)

    def _delete_outcome(self, key: str, outcome: Any, current: Any, if_version: str | None) -> bool:
        if outcome == -1:
            found = "is absent" if not current else f"is at version {current.decode()}"
            raise Conflict(f"{self.name}: key {key!r} {found}, not at version {if_version}", resource=self.name)
        return bool(outcome)

    # -- async callers: redis.asyncio on the running loop (no worker thread) -------------

    async def _get(self, key: str) -> Item | None:
        try:
            fields = await self._async().hmget(self._items + key, ["v", "ver", "exp"])
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"HMGET key {key!r}") from exc
        return self._item(key, fields)

    async def _put(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        version, keys, args = self._put_request(key, data, if_version, if_absent, expires_at)
        try:
            done, current = await run_script(self._async(), self._put_script, keys, args)
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"put of key {key!r}") from exc
        return self._put_outcome(key, version, done, current, if_version, if_absent)

    async def _delete(self, key: str, if_version: str | None) -> bool:
        try:
            outcome, current = await run_script(
                self._async(),
                self._delete_script,
                [self._items + key, self._index],
                [if_version or "", key],
            )
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"delete of key {key!r}") from exc
        return self._delete_outcome(key, outcome, current, if_version)

    def _scan_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> Page:
        low = b"(" + cursor.encode() if cursor is not None else (b"[" + prefix.encode() if prefix else b"-")
        high = b"(" + prefix.encode() + b"\xff" if prefix else b"+"  # 0xFF never occurs in UTF-8
        items: list[Item] = []
        try:
            while len(items) < limit:
                want = limit - len(items)
                members: list[bytes] = self._client.zrangebylex(  # type: ignore[assignment]
                    self._index, low, high, start=0, num=want
                )
                if not members:
                    return Page(items, None)
                with self._client.pipeline(transaction=False) as pipe:
                    for member in members:
                        pipe.hmget(self._items + member.decode(), ["v", "ver", "exp"])
                    rows = pipe.execute()
                gone = []
                for member, fields in zip(members, rows, strict=True):
                    item = self._item(member.decode(), fields)
                    if item is None:
                        gone.append(member)
                    else:
                        items.append(item)
                if gone:
                    self._prune_script(keys=[self._index, self._items], args=gone)
                low = b"(" + members[-1]
                if len(members) < want:
                    return Page(items, None)
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"scan of prefix {prefix!r}") from exc
        return Page(items, items[-1].key)

    def _get_many_blocking(self, keys: list[str]) -> dict[str, Item]:
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(self._items + key, ["v", "ver", "exp"])
                rows = pipe.execute()
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"get_many of {len(keys)} keys") from exc
        found = {}
        for key, fields in zip(keys, rows, strict=True):
            item = self._item(key, fields)
            if item is not None:
                found[key] = item
        return found

    def _put_many_blocking(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        versions = {key: uuid.uuid4().hex for key, _, _ in entries}
        exp = None if expires_at is None else int(expires_at.timestamp() * 1000)
        try:
            with self._client.pipeline(transaction=True) as pipe:  # MULTI/EXEC: all or none
                for key, _, data in entries:
                    item = self._items + key
                    pipe.delete(item)
                    fields: dict[str, Any] = {"v": data, "ver": versions[key]}
                    if exp is not None:
                        fields["exp"] = exp
                    pipe.hset(item, mapping=fields)  # type: ignore[arg-type]
                    if exp is not None:
                        pipe.pexpireat(item, exp)
                    pipe.zadd(self._index, {key: 0})
                pipe.execute()
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"put_many of {len(entries)} keys") from exc
        return versions
