"""Wrappers that pass every operation to another resource of the same kind.

App handles, telemetry and resilience (replication, failover) are built on these: a
wrapper has the same interface as what it wraps, so wrappers compose.

The wrapper contract, one rule for every kind:

- The outer face validates and encodes once. The public methods of the outermost
  wrapper check keys, values and options against the limits of the resource it
  reaches (``limits``, ``capabilities``, a KV store's ``_check_key`` and a cache's
  ``default_ttl`` are the inner's) and encode documents and message bodies to bytes;
  a TTL becomes an absolute expiry there.
- Hooks receive that validated request: a key, the encoded document or body, the
  condition (``if_version``, ``if_absent``, ``if_etag``), the absolute expiry.
- A wrapper forwards hook to hook: its ``_put`` calls the inner ``_put``, its
  ``_put_blocking`` the inner ``_put_blocking``, with the same arguments. It never
  calls the inner's public methods, so nothing is validated or encoded twice and the
  sync face stays blocking all the way down.
- A wrapper that changes what is stored (an envelope, a version) overrides the hooks
  it needs and forwards the rest; :meth:`_Forwarding._target` says which resource to
  reach (resolved lazily for App handles) and :meth:`_Forwarding._used` is told
  ``"read"`` or ``"write"`` before each operation.
- A wrapper whose target stays put (an opened App handle, a timed wrapper) may bind the
  hooks that only forward (``_direct``: by the access they record, and ``"always"`` for
  those that record none, like ``_check_key``) to its target's own, once that access is
  recorded: the call then costs no frame of the wrapper (:func:`bind_direct`). An App
  handle unbinds them when it is reset.
- A secret store's cache lives in the store that fetches: wrappers read and fill the
  inner store's cache, so one ``cache_ttl`` applies however the store is reached.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

from .base import Resource
from .blob import BlobStore, ListPage, ObjectInfo
from .cache import Cache
from .kv import Item, KeyValueStore, LogEntry, Page
from .queue import Message, Queue, Topic
from .secrets import SecretStore

__all__ = [
    "ForwardingBlobStore",
    "bind_direct",
    "unbind_direct",
    "ForwardingCache",
    "ForwardingKeyValueStore",
    "ForwardingQueue",
    "ForwardingSecretStore",
    "ForwardingTopic",
]

R = TypeVar("R", bound=Resource)


class _Forwarding(Generic[R]):
    """Mixin: the wrapped resource and the access hook (each kind forwards ``limits`` too)."""

    #: the hooks that do nothing but record an access and call the target's same hook with
    #: the same arguments, by that access (``"always"``: those that record none)
    _direct: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, inner: R | None = None, *, name: str | None = None) -> None:
        self._inner = inner
        location = inner.location if inner is not None else None
        Resource.__init__(self, location, name=name or getattr(inner, "name", None))  # type: ignore[arg-type]

    def _target(self) -> R:
        assert self._inner is not None
        return self._inner

    def _used(self, access: str) -> None:
        return None

    async def create(self) -> None:
        await self._target().create()

    async def ping(self) -> None:
        await self._target().ping()

    def close(self) -> None:
        self._target().close()

    def supports(self, capability: str) -> bool:
        return self._target().supports(capability)


class ForwardingKeyValueStore(_Forwarding[KeyValueStore], KeyValueStore):
    _direct: ClassVar[dict[str, tuple[str, ...]]] = {
        "always": ("_check_key",),
        "read": ("_get", "_get_blocking", "_scan_page", "_scan_page_blocking", "_get_many", "_get_many_blocking"),
        "write": (
            *("_put", "_put_blocking", "_delete", "_delete_blocking", "_put_many", "_put_many_blocking"),
            *("_put_if_newer", "_put_if_newer_blocking", "_put_with_log", "_put_with_log_blocking"),
        ),
    }

    @property
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        return self._target().capabilities

    @property
    def limits(self) -> Any:  # type: ignore[override]
        return self._target().limits

    def _check_key(self, key: str) -> None:
        self._target()._check_key(key)  # a provider may refuse more keys than the kind does

    async def _get(self, key: str) -> Item | None:
        self._used("read")
        return await self._target()._get(key)

    def _get_blocking(self, key: str) -> Item | None:
        self._used("read")
        return self._target()._get_blocking(key)

    async def _put(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        self._used("write")
        return await self._target()._put(key, value, data, if_version, if_absent, expires_at)

    def _put_blocking(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        self._used("write")
        return self._target()._put_blocking(key, value, data, if_version, if_absent, expires_at)

    async def _delete(self, key: str, if_version: str | None) -> bool:
        self._used("write")
        return await self._target()._delete(key, if_version)

    def _delete_blocking(self, key: str, if_version: str | None) -> bool:
        self._used("write")
        return self._target()._delete_blocking(key, if_version)

    async def _scan_page(self, prefix: str, limit: int, cursor: str | None) -> Page:
        self._used("read")
        return await self._target()._scan_page(prefix, limit, cursor)

    def _scan_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> Page:
        self._used("read")
        return self._target()._scan_page_blocking(prefix, limit, cursor)

    async def _put_if_newer(
        self, key: str, value: dict[str, Any], data: bytes, order: str, expires_at: datetime | None
    ) -> str | None:
        self._used("write")
        return await self._target()._put_if_newer(key, value, data, order, expires_at)

    def _put_if_newer_blocking(
        self, key: str, value: dict[str, Any], data: bytes, order: str, expires_at: datetime | None
    ) -> str | None:
        self._used("write")
        return self._target()._put_if_newer_blocking(key, value, data, order, expires_at)

    async def _put_with_log(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        order: str,
        expires_at: datetime | None,
        log: LogEntry,
    ) -> tuple[str, str] | None:
        self._used("write")
        return await self._target()._put_with_log(key, value, data, order, expires_at, log)

    def _put_with_log_blocking(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        order: str,
        expires_at: datetime | None,
        log: LogEntry,
    ) -> tuple[str, str] | None:
        self._used("write")
        return self._target()._put_with_log_blocking(key, value, data, order, expires_at, log)

    async def _get_many(self, keys: list[str]) -> dict[str, Item]:
        self._used("read")
        return await self._target()._get_many(keys)

    def _get_many_blocking(self, keys: list[str]) -> dict[str, Item]:
        self._used("read")
        return self._target()._get_many_blocking(keys)

    async def _put_many(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        self._used("write")
        return await self._target()._put_many(entries, expires_at)

    def _put_many_blocking(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        self._used("write")
        return self._target()._put_many_blocking(entries, expires_at)


class ForwardingBlobStore(_Forwarding[BlobStore], BlobStore):
    _direct: ClassVar[dict[str, tuple[str, ...]]] = {
        "read": (
            "_get",
            "_get_blocking",
            "_stream_blocking",
            "_head",
            "_head_blocking",
            "_list_page",
            "_list_page_blocking",
        ),
        "write": ("_put", "_put_blocking", "_put_stream", "_put_stream_blocking", "_delete", "_delete_blocking"),
    }

    @property
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        return self._target().capabilities

    @property
    def limits(self) -> Any:  # type: ignore[override]
        return self._target().limits

    async def _put(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], if_absent: bool, if_etag: str | None
    ) -> ObjectInfo:
        self._used("write")
        return await self._target()._put(key, data, content_type, metadata, if_absent, if_etag)

    def _put_blocking(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], if_absent: bool, if_etag: str | None
    ) -> ObjectInfo:
        self._used("write")
        return self._target()._put_blocking(key, data, content_type, metadata, if_absent, if_etag)

    async def _put_stream(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> ObjectInfo:
        self._used("write")
        return await self._target()._put_stream(key, chunks, content_type, metadata, if_absent, if_etag)

    def _put_stream_blocking(
        self,
        key: str,
        chunks: Iterator[bytes],
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> ObjectInfo:
        self._used("write")
        return self._target()._put_stream_blocking(key, chunks, content_type, metadata, if_absent, if_etag)

    async def _get(self, key: str, start: int | None, end: int | None) -> bytes:
        self._used("read")
        return await self._target()._get(key, start, end)

    def _get_blocking(self, key: str, start: int | None, end: int | None) -> bytes:
        self._used("read")
        return self._target()._get_blocking(key, start, end)

    async def _stream(self, key: str) -> AsyncIterator[bytes]:
        self._used("read")
        async for chunk in self._target()._stream(key):
            yield chunk

    def _stream_blocking(self, key: str) -> Iterator[bytes]:
        self._used("read")
        return self._target()._stream_blocking(key)

    async def _head(self, key: str) -> ObjectInfo | None:
        self._used("read")
        return await self._target()._head(key)

    def _head_blocking(self, key: str) -> ObjectInfo | None:
        self._used("read")
        return self._target()._head_blocking(key)

    async def _delete(self, key: str) -> bool:
        self._used("read")  # it tells whether the object existed
        self._used("write")
        return await self._target()._delete(key)

    def _delete_blocking(self, key: str) -> bool:
        self._used("read")  # it tells whether the object existed
        self._used("write")
        return self._target()._delete_blocking(key)

    async def _list_page(self, prefix: str, limit: int, cursor: str | None) -> ListPage:
        self._used("read")
        return await self._target()._list_page(prefix, limit, cursor)

    def _list_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> ListPage:
        self._used("read")
        return self._target()._list_page_blocking(prefix, limit, cursor)

    async def _url(self, key: str, expires: timedelta, method: str) -> str:
        self._used("read" if method == "GET" else "write")
        return await self._target()._url(key, expires, method)


class ForwardingQueue(_Forwarding[Queue], Queue):
    _direct: ClassVar[dict[str, tuple[str, ...]]] = {
        "always": ("_depth", "_depth_blocking", "_peek", "_peek_blocking"),
        "read": ("_receive", "_receive_blocking", "_ack", "_ack_blocking", "_nack", "_nack_blocking"),
        "write": ("_send", "_send_blocking"),
    }

    @property
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        return self._target().capabilities

    @property
    def limits(self) -> Any:  # type: ignore[override]
        return self._target().limits

    def visibility_default(self) -> float:
        return self._target().visibility_default()

    async def _send(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        self._used("write")
        return await self._target()._send(data, attributes, delay)

    def _send_blocking(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        self._used("write")
        return self._target()._send_blocking(data, attributes, delay)

    async def _receive(self, max_messages: int, visibility_timeout: float, wait: float) -> list[Message]:
        self._used("read")
        return await self._target()._receive(max_messages, visibility_timeout, wait)

    def _receive_blocking(self, max_messages: int, visibility_timeout: float, wait: float) -> list[Message]:
        self._used("read")
        return self._target()._receive_blocking(max_messages, visibility_timeout, wait)

    async def _ack(self, message: Message) -> None:
        self._used("read")
        await self._target()._ack(message)

    def _ack_blocking(self, message: Message) -> None:
        self._used("read")
        self._target()._ack_blocking(message)

    async def _nack(self, message: Message, delay: float) -> None:
        self._used("read")
        await self._target()._nack(message, delay)

    def _nack_blocking(self, message: Message, delay: float) -> None:
        self._used("read")
        self._target()._nack_blocking(message, delay)

    async def _depth(self) -> int:
        return await self._target()._depth()

    def _depth_blocking(self) -> int:
        return self._target()._depth_blocking()

    async def _peek(self, limit: int) -> list[Message]:
        return await self._target()._peek(limit)

    def _peek_blocking(self, limit: int) -> list[Message]:
        return self._target()._peek_blocking(limit)

    def dead_letters(self) -> Queue:
        return self._target().dead_letters()


class ForwardingTopic(_Forwarding[Topic], Topic):
    _direct: ClassVar[dict[str, tuple[str, ...]]] = {
        "read": ("_subscription",),
        "write": ("_publish", "_publish_blocking"),
    }

    @property
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        return self._target().capabilities

    @property
    def limits(self) -> Any:  # type: ignore[override]
        return self._target().limits

    async def _publish(self, data: bytes, attributes: dict[str, str]) -> str:
        self._used("write")
        return await self._target()._publish(data, attributes)

    def _publish_blocking(self, data: bytes, attributes: dict[str, str]) -> str:
        self._used("write")
        return self._target()._publish_blocking(data, attributes)

    def _subscription(self, name: str, max_attempts: int | None) -> Queue:
        self._used("read")
        return self._target()._subscription(name, max_attempts)


class ForwardingCache(_Forwarding[Cache], Cache):
    _direct: ClassVar[dict[str, tuple[str, ...]]] = {
        "read": ("_get", "_get_blocking"),
        "write": ("_set", "_set_blocking", "_delete", "_delete_blocking", "_incr", "_incr_blocking"),
    }

    @property
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        return self._target().capabilities

    @property
    def limits(self) -> Any:  # type: ignore[override]
        return self._target().limits

    @property
    def default_ttl(self) -> float | None:  # type: ignore[override]
        return self._target().default_ttl

    async def _get(self, key: str) -> bytes | None:
        self._used("read")
        return await self._target()._get(key)

    def _get_blocking(self, key: str) -> bytes | None:
        self._used("read")
        return self._target()._get_blocking(key)

    async def _set(self, key: str, data: bytes, ttl: float | None) -> None:
        self._used("write")
        await self._target()._set(key, data, ttl)

    def _set_blocking(self, key: str, data: bytes, ttl: float | None) -> None:
        self._used("write")
        self._target()._set_blocking(key, data, ttl)

    async def _delete(self, key: str) -> bool:
        self._used("write")
        return await self._target()._delete(key)

    def _delete_blocking(self, key: str) -> bool:
        self._used("write")
        return self._target()._delete_blocking(key)

    async def _incr(self, key: str, by: int) -> int:
        self._used("write")
        return await self._target()._incr(key, by)

    def _incr_blocking(self, key: str, by: int) -> int:
        self._used("write")
        return self._target()._incr_blocking(key, by)


class ForwardingSecretStore(_Forwarding[SecretStore], SecretStore):
    _direct: ClassVar[dict[str, tuple[str, ...]]] = {
        "always": ("_hit", "_keep"),
        "read": ("_fetch", "_fetch_blocking"),
    }

    @property
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        return self._target().capabilities

    def __init__(self, inner: SecretStore | None = None, *, name: str | None = None) -> None:
        _Forwarding.__init__(self, inner, name=name)
        self.cache_ttl = 0.0  # the cache is the inner store's: see the module's docstring

    def invalidate(self, name: str | None = None) -> None:
        self._target().invalidate(name)

    def _hit(self, name: str) -> str | None:
        return self._target()._hit(name)

    def _keep(self, name: str, value: str) -> str:
        return self._target()._keep(name, value)

    async def _fetch(self, name: str) -> str:
        self._used("read")
        return await self._target()._fetch(name)

    def _fetch_blocking(self, name: str) -> str:
        self._used("read")
        return self._target()._fetch_blocking(name)


_BINDABLE: dict[tuple[type, str], tuple[str, ...]] = {}


def _bindable(cls: type, group: str) -> tuple[str, ...]:
    """The hooks of ``group`` that ``cls`` still forwards unchanged (a subclass that overrides
    one, to time it or to change what is stored, keeps its own)."""
    names = _BINDABLE.get((cls, group))
    if names is None:
        forwarding = next(c for c in cls.__mro__ if "_direct" in vars(c))
        owned = vars(forwarding)
        names = tuple(n for n in forwarding._direct.get(group, ()) if getattr(cls, n) is owned[n])  # type: ignore[attr-defined]
        _BINDABLE[(cls, group)] = names
    return names


def bind_direct(wrapper: Any, target: Any, group: str) -> None:
    """Bind ``wrapper``'s forwarding hooks of ``group`` (an access, or ``"always"``) to
    ``target``'s: for a wrapper whose target stays put, once that access is recorded."""
    own = wrapper.__dict__
    for name in _bindable(type(wrapper), group):
        own[name] = getattr(target, name)


def unbind_direct(wrapper: Any) -> None:
    """Undo :func:`bind_direct`: every hook forwards through the wrapper's methods again."""
    own = wrapper.__dict__
    for names in type(wrapper)._direct.values():
        for name in names:
            own.pop(name, None)
