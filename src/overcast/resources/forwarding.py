"""Wrappers that pass every operation to another resource of the same kind.

App handles, telemetry and resilience are built on these: a wrapper has the same
interface as what it wraps, so wrappers compose. Subclasses override
:meth:`_target` (which resource to call, e.g. resolved lazily) and :meth:`_used`
(called with ``"read"`` or ``"write"`` before each operation).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from .base import Resource
from .blob import BlobStore, ListPage, ObjectInfo
from .cache import Cache
from .kv import Item, KeyValueStore, Page
from .queue import Message, Queue, Topic, decode_body
from .secrets import SecretStore

__all__ = [
    "ForwardingBlobStore",
    "ForwardingCache",
    "ForwardingKeyValueStore",
    "ForwardingQueue",
    "ForwardingSecretStore",
    "ForwardingTopic",
]

R = TypeVar("R", bound=Resource)


def _ttl(expires_at: datetime | None) -> timedelta | None:
    if expires_at is None:
        return None
    return max(expires_at - datetime.now(UTC), timedelta(milliseconds=1))


class _Forwarding(Generic[R]):
    """Mixin: the wrapped resource and the access hook."""

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
    validates = False  # the wrapped store checks keys and values once

    @property
    def limits(self) -> Any:  # type: ignore[override]
        return self._target().limits

    async def _get(self, key: str) -> Item | None:
        self._used("read")
        return await self._target().get(key)

    def _get_blocking(self, key: str) -> Item | None:
        self._used("read")
        return self._target().sync.get(key)

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
        return await self._target().put(key, value, if_version=if_version, if_absent=if_absent, ttl=_ttl(expires_at))

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
        return self._target().sync.put(key, value, if_version=if_version, if_absent=if_absent, ttl=_ttl(expires_at))

    async def _delete(self, key: str, if_version: str | None) -> bool:
        self._used("write")
        return await self._target().delete(key, if_version=if_version)

    def _delete_blocking(self, key: str, if_version: str | None) -> bool:
        self._used("write")
        return self._target().sync.delete(key, if_version=if_version)

    async def _scan_page(self, prefix: str, limit: int, cursor: str | None) -> Page:
        self._used("read")
        return await self._target().page(prefix, limit=limit, cursor=cursor)

    def _scan_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> Page:
        self._used("read")
        return self._target().sync.page(prefix, limit=limit, cursor=cursor)

    async def _get_many(self, keys: list[str]) -> dict[str, Item]:
        self._used("read")
        return await self._target().get_many(keys)

    def _get_many_blocking(self, keys: list[str]) -> dict[str, Item]:
        self._used("read")
        return self._target().sync.get_many(keys)

    async def _put_many(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        self._used("write")
        return await self._target().put_many({k: v for k, v, _ in entries}, ttl=_ttl(expires_at))

    def _put_many_blocking(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        self._used("write")
        return self._target().sync.put_many({k: v for k, v, _ in entries}, ttl=_ttl(expires_at))


class ForwardingBlobStore(_Forwarding[BlobStore], BlobStore):
    @property
    def limits(self) -> Any:  # type: ignore[override]
        return self._target().limits

    async def _put(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], if_absent: bool, if_etag: str | None
    ) -> ObjectInfo:
        self._used("write")
        return await self._target().put(
            key, data, content_type=content_type, metadata=metadata, if_absent=if_absent, if_etag=if_etag
        )

    def _put_blocking(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], if_absent: bool, if_etag: str | None
    ) -> ObjectInfo:
        self._used("write")
        return self._target().sync.put(
            key, data, content_type=content_type, metadata=metadata, if_absent=if_absent, if_etag=if_etag
        )

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
        return await self._target().put(
            key, chunks, content_type=content_type, metadata=metadata, if_absent=if_absent, if_etag=if_etag
        )

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
        return self._target().sync.put(
            key, chunks, content_type=content_type, metadata=metadata, if_absent=if_absent, if_etag=if_etag
        )

    async def _get(self, key: str, start: int | None, end: int | None) -> bytes:
        self._used("read")
        return await self._target().get(key, start=start, end=end)

    def _get_blocking(self, key: str, start: int | None, end: int | None) -> bytes:
        self._used("read")
        return self._target().sync.get(key, start=start, end=end)

    async def _stream(self, key: str) -> AsyncIterator[bytes]:
        self._used("read")
        async for chunk in self._target().stream(key):
            yield chunk

    def _stream_blocking(self, key: str) -> Iterator[bytes]:
        self._used("read")
        return self._target().sync.stream(key)

    async def _head(self, key: str) -> ObjectInfo | None:
        self._used("read")
        return await self._target().head(key)

    def _head_blocking(self, key: str) -> ObjectInfo | None:
        self._used("read")
        return self._target().sync.head(key)

    async def _delete(self, key: str) -> bool:
        self._used("write")
        return await self._target().delete(key)

    def _delete_blocking(self, key: str) -> bool:
        self._used("write")
        return self._target().sync.delete(key)

    async def _list_page(self, prefix: str, limit: int, cursor: str | None) -> ListPage:
        self._used("read")
        return await self._target().page(prefix, limit=limit, cursor=cursor)

    def _list_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> ListPage:
        self._used("read")
        return self._target().sync.page(prefix, limit=limit, cursor=cursor)

    async def _url(self, key: str, expires: timedelta, method: str) -> str:
        self._used("read" if method == "GET" else "write")
        return await self._target().url(key, expires=expires, method=method)


class ForwardingQueue(_Forwarding[Queue], Queue):
    @property
    def limits(self) -> Any:  # type: ignore[override]
        return self._target().limits

    def visibility_default(self) -> float:
        return self._target().visibility_default()

    async def _send(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        self._used("write")
        return await self._target().send(decode_body(data), delay=delay, attributes=attributes)

    def _send_blocking(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        self._used("write")
        return self._target().sync.send(decode_body(data), delay=delay, attributes=attributes)

    async def _receive(self, max_messages: int, visibility_timeout: float, wait: float) -> list[Message]:
        self._used("read")
        return await self._target().receive(max_messages=max_messages, visibility_timeout=visibility_timeout, wait=wait)

    def _receive_blocking(self, max_messages: int, visibility_timeout: float, wait: float) -> list[Message]:
        self._used("read")
        return self._target().sync.receive(max_messages=max_messages, visibility_timeout=visibility_timeout, wait=wait)

    async def _ack(self, message: Message) -> None:
        self._used("read")
        await self._target().ack(message)

    def _ack_blocking(self, message: Message) -> None:
        self._used("read")
        self._target().sync.ack(message)

    async def _nack(self, message: Message, delay: float) -> None:
        self._used("read")
        await self._target().nack(message, delay=delay)

    def _nack_blocking(self, message: Message, delay: float) -> None:
        self._used("read")
        self._target().sync.nack(message, delay=delay)

    async def _depth(self) -> int:
        return await self._target().depth()

    def _depth_blocking(self) -> int:
        return self._target().sync.depth()

    def dead_letters(self) -> Queue:
        return self._target().dead_letters()


class ForwardingTopic(_Forwarding[Topic], Topic):
    @property
    def limits(self) -> Any:  # type: ignore[override]
        return self._target().limits

    async def _publish(self, data: bytes, attributes: dict[str, str]) -> str:
        self._used("write")
        return await self._target().publish(decode_body(data), attributes=attributes)

    def _publish_blocking(self, data: bytes, attributes: dict[str, str]) -> str:
        self._used("write")
        return self._target().sync.publish(decode_body(data), attributes=attributes)

    def _subscription(self, name: str, max_attempts: int | None) -> Queue:
        self._used("read")
        return self._target().subscription(name, max_attempts=max_attempts)


class ForwardingCache(_Forwarding[Cache], Cache):
    @property
    def limits(self) -> Any:  # type: ignore[override]
        return self._target().limits

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
    def __init__(self, inner: SecretStore | None = None, *, name: str | None = None) -> None:
        _Forwarding.__init__(self, inner, name=name)
        self.cache_ttl = 0.0  # the wrapped store caches
        self._cached = {}
        import threading

        self._lock = threading.Lock()

    def invalidate(self, name: str | None = None) -> None:
        self._target().invalidate(name)

    async def _fetch(self, name: str) -> str:
        self._used("read")
        return await self._target().get(name)

    def _fetch_blocking(self, name: str) -> str:
        self._used("read")
        return self._target().sync.get(name)
