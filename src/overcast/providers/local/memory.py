"""In-process providers of every kind, for tests and quick experiments: ``memory://NAME``.

Resources opened with the same name (the URL host) in one process share their
data, so ``open_kv("memory://users")`` twice sees the same items; ``memory://``
without a name is private to the instance. Nothing survives the process.

Every operation is a few dictionary steps under a lock, so these providers run
on the event loop (``offload = False``) instead of in a worker thread. They keep
the semantics of the durable providers: versions that never repeat, conditional
writes, TTL, ordered scans, visibility timeouts, delay, dead letters, fan-out.
Decisions are those of :mod:`overcast.providers.local.sqlite_queue` for queues
(stale acks are ignored; a topic without subscriptions drops what it gets).
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import itertools
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from ...errors import ConfigError, Conflict, InvalidArgument, NotFound
from ...resources.blob import BlobStore, ListPage, ObjectInfo
from ...resources.cache import Cache
from ...resources.keys import check_key
from ...resources.kv import Item, KeyValueStore, Page
from ...resources.queue import Message, Queue, Topic, decode_body, poll
from ...resources.secrets import SecretStore
from ...resources.url import ResourceURL

__all__ = [
    "MemoryBlobStore",
    "MemoryCache",
    "MemoryKeyValueStore",
    "MemoryQueue",
    "MemorySecretStore",
    "MemoryTopic",
]

S = TypeVar("S")

_shared: dict[tuple[str, str], Any] = {}
_shared_lock = threading.Lock()
_versions = itertools.count(1)
_TRUE = frozenset({"1", "true", "yes", "on"})
_POLL_FIRST = 0.005
_POLL_MAX = 0.05


def _state(kind: str, host: str, factory: Callable[[], S]) -> S:
    """The data behind ``memory://host`` for ``kind``: shared by name, private without one."""
    if not host:
        return factory()
    with _shared_lock:
        found: S | None = _shared.get((kind, host))
        if found is None:
            found = _shared[(kind, host)] = factory()
        return found


def _new_version() -> str:
    return f"{next(_versions):012x}"


def _positive(url: ResourceURL, option: str, resource: str, kind: type[int] | type[float]) -> Any:
    raw = url.option(option)
    if raw is None:
        return None
    try:
        value = kind(raw)
    except ValueError:
        value = 0
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{resource}: option {option} must be a positive {kind.__name__}, got {raw!r} in {url}")
    return value


def _after_cursor(keys: list[str], prefix: str, cursor: str | None, resource: str) -> int:
    start = bisect.bisect_left(keys, prefix)
    if cursor is not None:
        if not isinstance(cursor, str):
            raise InvalidArgument(f"{resource}: cursor must be a str from a previous page", resource=resource)
        start = max(start, bisect.bisect_right(keys, cursor))
    return start


def _drop_key(keys: list[str], key: str) -> None:
    i = bisect.bisect_left(keys, key)
    if i < len(keys) and keys[i] == key:
        del keys[i]


# -- key-value -------------------------------------------------------------------------


@dataclass(slots=True)
class _Document:
    data: bytes
    version: str
    expires_at: datetime | None


class _KVState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: dict[str, _Document] = {}
        self.keys: list[str] = []  # sorted: scans in code-point order


class MemoryKeyValueStore(KeyValueStore):
    """Documents in a dict, with a sorted key list for ordered scans.

    Capabilities: ``ttl``, ``ordered_scan``. Page cursors are the last key returned.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"ttl", "ordered_scan"})
    offload: ClassVar[bool] = False

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self._data = _state("kv", self.location.host, _KVState)

    def _live(self, key: str, now: datetime) -> _Document | None:
        doc = self._data.items.get(key)
        if doc is not None and doc.expires_at is not None and doc.expires_at <= now:
            del self._data.items[key]
            _drop_key(self._data.keys, key)
            return None
        return doc

    def _item(self, key: str, doc: _Document) -> Item:
        return Item(key, json.loads(doc.data), doc.version, doc.expires_at)

    def _get_blocking(self, key: str) -> Item | None:
        with self._data.lock:
            doc = self._live(key, datetime.now(UTC))
        return None if doc is None else self._item(key, doc)

    def _store(self, key: str, data: bytes, expires_at: datetime | None) -> str:
        version = _new_version()
        if key not in self._data.items:
            bisect.insort(self._data.keys, key)
        self._data.items[key] = _Document(data, version, expires_at)
        return version

    def _put_blocking(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        with self._data.lock:
            current = self._live(key, datetime.now(UTC))
            if if_absent and current is not None:
                raise Conflict(f"{self.name}: key {key!r} already exists", resource=self.name)
            if if_version is not None and (current is None or current.version != if_version):
                found = "is absent" if current is None else f"is at version {current.version}"
                raise Conflict(
                    f"{self.name}: key {key!r} {found}, not at version {if_version}",
                    resource=self.name,
                )
            return self._store(key, data, expires_at)

    def _put_many_blocking(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        with self._data.lock:
            return {key: self._store(key, data, expires_at) for key, _, data in entries}

    def _delete_blocking(self, key: str, if_version: str | None) -> bool:
        with self._data.lock:
            current = self._live(key, datetime.now(UTC))
            if if_version is not None and (current is None or current.version != if_version):
                found = "is absent" if current is None else f"is at version {current.version}"
                raise Conflict(
                    f"{self.name}: key {key!r} {found}, not at version {if_version}",
                    resource=self.name,
                )
            if current is None:
                return False
            del self._data.items[key]
            _drop_key(self._data.keys, key)
            return True

    def _scan_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> Page:
        now = datetime.now(UTC)
        items: list[Item] = []
        expired: list[str] = []
        more = False
        with self._data.lock:
            keys = self._data.keys
            for i in range(_after_cursor(keys, prefix, cursor, self.name), len(keys)):
                key = keys[i]
                if not key.startswith(prefix):
                    break
                doc = self._data.items[key]
                if doc.expires_at is not None and doc.expires_at <= now:
                    expired.append(key)
                    continue
                if len(items) == limit:
                    more = True
                    break
                items.append(self._item(key, doc))
            for key in expired:
                del self._data.items[key]
                _drop_key(keys, key)
        return Page(items, items[-1].key if more else None)


# -- blobs -----------------------------------------------------------------------------


class _BlobState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objects: dict[str, tuple[bytes, ObjectInfo]] = {}
        self.keys: list[str] = []


class MemoryBlobStore(BlobStore):
    """Objects in a dict. ETags are the MD5 of the content, as S3 gives for single-part uploads.

    Capabilities: ``conditional``. It cannot sign URLs.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"conditional"})
    offload: ClassVar[bool] = False

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self._data = _state("bucket", self.location.host, _BlobState)

    def _missing(self, key: str) -> NotFound:
        return NotFound(f"{self.name}: no object at key {key!r}", resource=self.name)

    def _put_blocking(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], if_absent: bool, if_etag: str | None
    ) -> ObjectInfo:
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        info = ObjectInfo(key, len(data), etag, content_type, dict(metadata), datetime.now(UTC))
        with self._data.lock:
            current = self._data.objects.get(key)
            if if_absent and current is not None:
                raise Conflict(f"{self.name}: an object exists at key {key!r}", resource=self.name)
            if if_etag is not None and (current is None or current[1].etag != if_etag):
                found = "no object" if current is None else f"ETag {current[1].etag}"
                raise Conflict(f"{self.name}: key {key!r} has {found}, not ETag {if_etag}", resource=self.name)
            if current is None:
                bisect.insort(self._data.keys, key)
            self._data.objects[key] = (data, info)
        return replace(info, metadata=dict(metadata))

    def _get_blocking(self, key: str, start: int | None, end: int | None) -> bytes:
        with self._data.lock:
            found = self._data.objects.get(key)
        if found is None:
            raise self._missing(key)
        return found[0][start:end]

    def _stream_blocking(self, key: str) -> Iterator[bytes]:
        data = self._get_blocking(key, None, None)
        step = self.limits.chunk_size
        return iter([data[i : i + step] for i in range(0, len(data), step)])

    def _head_blocking(self, key: str) -> ObjectInfo | None:
        with self._data.lock:
            found = self._data.objects.get(key)
        return None if found is None else replace(found[1], metadata=dict(found[1].metadata))

    def _delete_blocking(self, key: str) -> bool:
        with self._data.lock:
            if self._data.objects.pop(key, None) is None:
                return False
            _drop_key(self._data.keys, key)
            return True

    def _list_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> ListPage:
        objects: list[ObjectInfo] = []
        more = False
        with self._data.lock:
            keys = self._data.keys
            for i in range(_after_cursor(keys, prefix, cursor, self.name), len(keys)):
                key = keys[i]
                if not key.startswith(prefix):
                    break
                if len(objects) == limit:
                    more = True
                    break
                info = self._data.objects[key][1]
                objects.append(replace(info, metadata=dict(info.metadata)))
        return ListPage(objects, objects[-1].key if more else None)


# -- queues and topics -----------------------------------------------------------------


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

    capabilities: ClassVar[frozenset[str]] = frozenset({"delay", "dead_letter", "depth"})
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
        self._dead = (loc.option("dead_letters") or "").lower() in _TRUE
        attempts = _positive(loc, "max_attempts", self.name, int)
        self.max_attempts: int | None = None if self._dead else (attempts or Queue.default_max_attempts)
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
        _positive(self.location, "max_attempts", self.name, int)

    def _subscription(self, name: str, max_attempts: int | None) -> MemoryQueue:
        options = dict(self.location.options)
        options["subscription"] = name
        if max_attempts is not None:
            if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
                raise InvalidArgument(
                    f"{self.name}: max_attempts of subscription {name!r} must be a positive int, got {max_attempts!r}",
                    resource=self.name,
                )
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


class _CacheState:
    def __init__(self, max_items: int, max_bytes: int) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()  # least recent first
        self.size = 0
        self.max_items = max_items
        self.max_bytes = max_bytes


def _entry_size(key: str, data: bytes) -> int:
    return len(key.encode()) + len(data)


class MemoryCache(Cache):
    """A bounded LRU cache in memory, shared by name within the process.

    URL options: ``max_items`` (10,000 by default) and ``max_bytes`` (64 MiB; an
    entry counts its key and JSON value in UTF-8) bound it, evicting the least
    recently used; ``ttl`` is the default TTL in seconds (none by default). A value
    larger than ``max_bytes`` is not kept. Opening a shared cache again with other
    explicit limits is a :class:`~overcast.errors.ConfigError`.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset()
    offload: ClassVar[bool] = False
    default_max_items: ClassVar[int] = 10_000
    default_max_bytes: ClassVar[int] = 64 * 1024 * 1024

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        loc = self.location
        max_items: int | None = _positive(loc, "max_items", self.name, int)
        max_bytes: int | None = _positive(loc, "max_bytes", self.name, int)
        ttl: float | None = _positive(loc, "ttl", self.name, float)
        if ttl is not None and ttl > self.limits.max_ttl:
            raise ConfigError(f"{self.name}: option ttl is past the limit of {self.limits.max_ttl:g} seconds in {loc}")
        self.default_ttl = ttl
        self._data = _state(
            "cache",
            loc.host,
            lambda: _CacheState(max_items or self.default_max_items, max_bytes or self.default_max_bytes),
        )
        for option, asked, actual in (
            ("max_items", max_items, self._data.max_items),
            ("max_bytes", max_bytes, self._data.max_bytes),
        ):
            if asked is not None and asked != actual:
                raise ConfigError(
                    f"{self.name}: memory cache {loc.host!r} is already open with {option}={actual}, not {asked}"
                )

    def _live(self, key: str) -> tuple[bytes, float | None] | None:
        entry = self._data.entries.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= time.monotonic():
            self._remove(key)
            return None
        return entry

    def _remove(self, key: str) -> bool:
        entry = self._data.entries.pop(key, None)
        if entry is None:
            return False
        self._data.size -= _entry_size(key, entry[0])
        return True

    def _keep(self, key: str, data: bytes, expires: float | None) -> None:
        state = self._data
        self._remove(key)
        size = _entry_size(key, data)
        if size > state.max_bytes:
            return
        state.entries[key] = (data, expires)
        state.size += size
        while len(state.entries) > state.max_items or state.size > state.max_bytes:
            oldest = next(iter(state.entries))
            self._remove(oldest)

    def _get_blocking(self, key: str) -> bytes | None:
        with self._data.lock:
            entry = self._live(key)
            if entry is None:
                return None
            self._data.entries.move_to_end(key)
            return entry[0]

    def _set_blocking(self, key: str, data: bytes, ttl: float | None) -> None:
        expires = None if ttl is None else time.monotonic() + ttl
        with self._data.lock:
            self._keep(key, data, expires)

    def _delete_blocking(self, key: str) -> bool:
        with self._data.lock:
            return self._live(key) is not None and self._remove(key)

    def _incr_blocking(self, key: str, by: int) -> int:
        with self._data.lock:
            entry = self._live(key)
            if entry is None:
                value = by
                expires = None if self.default_ttl is None else time.monotonic() + self.default_ttl
            else:
                current = json.loads(entry[0])
                if type(current) is not int:
                    raise InvalidArgument(
                        f"{self.name}: cannot incr key {key!r}: it holds {type(current).__name__}, not an integer",
                        resource=self.name,
                    )
                value, expires = current + by, entry[1]
            self._keep(key, str(value).encode(), expires)
            return value


# -- secrets ---------------------------------------------------------------------------


class _SecretState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, str] = {}


_everywhere = _SecretState()


class _SetSecret:
    """``MemorySecretStore.set``: on the class, for every store in the process; on an instance, for its store."""

    def __get__(self, store: MemorySecretStore | None, owner: type[MemorySecretStore]) -> Callable[[str, str], None]:
        if store is None:
            return lambda name, value: _put_secret(_everywhere, name, value, "memory secrets")
        return store._set_here


def _put_secret(state: _SecretState, name: str, value: str, resource: str) -> None:
    check_key(name, max_bytes=512, resource=resource, what="secret name")
    if not isinstance(value, str):
        raise InvalidArgument(
            f"{resource}: the value of secret {name!r} must be a str, not {type(value).__name__}", resource=resource
        )
    with state.lock:
        state.values[name] = value


class MemorySecretStore(SecretStore):
    """Secrets set by code, for tests: ``MemorySecretStore.set(name, value)``.

    Called on the class, ``set`` defines a secret every memory secret store in the
    process can read; called on an instance, it defines it in that store only (and
    in the stores sharing its ``memory://NAME``), where it takes precedence.
    Values are not cached by default (``cache_ttl`` 0), so a new value is read at once.
    """

    offload: ClassVar[bool] = False
    default_cache_ttl: ClassVar[float] = 0.0
    set = _SetSecret()

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self._values = _state("secret", self.location.host, _SecretState)

    def _set_here(self, name: str, value: str) -> None:
        _put_secret(self._values, name, value, self.name)
        self.invalidate(name)

    def _fetch_blocking(self, name: str) -> str:
        for state in (self._values, _everywhere):
            with state.lock:
                value = state.values.get(name)
            if value is not None:
                return value
        raise NotFound(f"{self.name}: no secret named {name!r}", resource=self.name)
