"""Objects: bytes or streams by key, with content type, metadata and conditional writes.

Range reads take Python slice bounds: ``get(key, start=10, end=20)`` returns
``data[10:20]``. ETags are opaque strings without quotes; ``put(..., if_etag=e)``
writes only if the object still has that ETag and ``if_absent=True`` only if there
is none, raising :class:`~overcast.errors.Conflict` otherwise.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import ClassVar

from ..errors import InvalidArgument, NotSupported
from . import bridge
from .base import Resource
from .keys import check_key
from .records import field, record

__all__ = ["BlobLimits", "BlobStore", "ListPage", "ObjectInfo", "SyncBlobStore"]

Body = bytes | bytearray | memoryview
AsyncBody = Body | AsyncIterable[bytes]
SyncBody = Body | Iterable[bytes]

_META_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@record(frozen=True, slots=True)
class ObjectInfo:
    """What is known of a stored object without reading it."""

    key: str
    size: int
    etag: str
    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    last_modified: datetime | None = None


@record(frozen=True, slots=True)
class ListPage:
    objects: list[ObjectInfo]
    cursor: str | None


@record(frozen=True, slots=True)
class BlobLimits:
    """Checked before any call. Metadata follows the strictest cloud (S3's 2 KB,
    Azure's identifier names): lowercase names of letters, digits and ``_``."""

    max_key_bytes: int = 1024
    max_metadata_bytes: int = 2048
    max_page: int = 1000
    chunk_size: int = 1024 * 1024


class BlobStore(Resource):
    """Objects by key. Capabilities: ``url`` (signed URLs), ``conditional`` (if_absent/if_etag)."""

    kind: ClassVar[str] = "bucket"
    limits: ClassVar[BlobLimits] = BlobLimits()
    required_hooks: ClassVar[tuple[str, ...]] = ("_put", "_get", "_head", "_delete", "_list_page")

    async def put(
        self,
        key: str,
        data: AsyncBody,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        if_absent: bool = False,
        if_etag: str | None = None,
    ) -> ObjectInfo:
        """Store ``data`` (bytes, or an async iterable of bytes) at ``key``."""
        ctype, meta = self._check_put(key, content_type, metadata, if_absent, if_etag)
        if isinstance(data, (bytes, bytearray, memoryview)):
            return await self._put(key, bytes(data), ctype, meta, if_absent, if_etag)
        if not isinstance(data, AsyncIterable):
            raise InvalidArgument(f"{self.name}: data for {key!r} must be bytes or an async iterable of bytes")
        return await self._put_stream(key, aiter(data), ctype, meta, if_absent, if_etag)

    async def get(self, key: str, *, start: int | None = None, end: int | None = None) -> bytes:
        """Return the object's bytes, or ``[start:end]`` of them. Raise NotFound if absent."""
        self._check_key(key)
        self._check_range(start, end)
        return await self._get(key, start, end)

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        """Yield the object's bytes in chunks. Raise NotFound if absent."""
        self._check_key(key)
        async for chunk in self._stream(key):
            yield chunk

    async def head(self, key: str) -> ObjectInfo | None:
        self._check_key(key)
        return await self._head(key)

    async def delete(self, key: str) -> bool:
        """Delete ``key``; return whether it existed."""
        self._check_key(key)
        return await self._delete(key)

    async def page(self, prefix: str = "", *, limit: int | None = None, cursor: str | None = None) -> ListPage:
        return await self._list_page(prefix, self._check_page(prefix, limit), cursor)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Yield every object whose key starts with ``prefix``, in key order, paging internally."""
        cursor: str | None = None
        while True:
            result = await self.page(prefix, cursor=cursor)
            for info in result.objects:
                yield info
            if result.cursor is None:
                return
            cursor = result.cursor

    async def url(self, key: str, *, expires: timedelta = timedelta(hours=1), method: str = "GET") -> str:
        """A URL granting ``method`` on ``key`` until ``expires`` from now, where the provider can sign."""
        self._check_key(key)
        if method not in ("GET", "PUT"):
            raise InvalidArgument(f"{self.name}: url method must be GET or PUT, not {method!r}")
        return await self._url(key, expires, method)

    @property
    def sync(self) -> SyncBlobStore:
        return SyncBlobStore(self)

    # -- validation ------------------------------------------------------------------

    def _check_key(self, key: str) -> None:
        check_key(key, max_bytes=self.limits.max_key_bytes, resource=self.name)

    def _check_range(self, start: int | None, end: int | None) -> None:
        for name, value in (("start", start), ("end", end)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise InvalidArgument(f"{self.name}: {name} must be a non-negative int, got {value!r}")
        if start is not None and end is not None and end < start:
            raise InvalidArgument(f"{self.name}: end ({end}) is before start ({start})")

    def _check_page(self, prefix: str, limit: int | None) -> int:
        if prefix:
            self._check_key(prefix)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidArgument(f"{self.name}: limit must be a positive int, got {limit!r}")
        return min(limit or self.limits.max_page, self.limits.max_page)

    def _check_put(
        self,
        key: str,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        if_absent: bool,
        if_etag: str | None,
    ) -> tuple[str, dict[str, str]]:
        self._check_key(key)
        if if_absent and if_etag is not None:
            raise InvalidArgument(f"{self.name}: pass if_absent or if_etag, not both")
        meta = dict(metadata or {})
        size = 0
        for name, value in meta.items():
            if not isinstance(name, str) or not _META_NAME.match(name):
                raise InvalidArgument(
                    f"{self.name}: metadata name {name!r} for {key!r} must be lowercase letters, digits and _"
                )
            if not isinstance(value, str) or not value.isascii() or not value.isprintable():
                raise InvalidArgument(f"{self.name}: metadata {name!r} for {key!r} must be printable ASCII text")
            size += len(name) + len(value)
        if size > self.limits.max_metadata_bytes:
            raise InvalidArgument(
                f"{self.name}: metadata for {key!r} is {size} bytes; the limit is {self.limits.max_metadata_bytes}"
            )
        return content_type or "application/octet-stream", meta

    # -- hooks -----------------------------------------------------------------------

    async def _put(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], if_absent: bool, if_etag: str | None
    ) -> ObjectInfo:
        return await self._call(self._put_blocking, key, data, content_type, metadata, if_absent, if_etag)

    def _put_blocking(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], if_absent: bool, if_etag: str | None
    ) -> ObjectInfo:
        return bridge.run_sync(self._put(key, data, content_type, metadata, if_absent, if_etag))

    async def _put_stream(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> ObjectInfo:
        data = b"".join([bytes(chunk) async for chunk in chunks])
        return await self._put(key, data, content_type, metadata, if_absent, if_etag)

    def _put_stream_blocking(
        self,
        key: str,
        chunks: Iterator[bytes],
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> ObjectInfo:
        return self._put_blocking(key, b"".join(chunks), content_type, metadata, if_absent, if_etag)

    async def _get(self, key: str, start: int | None, end: int | None) -> bytes:
        return await self._call(self._get_blocking, key, start, end)

    def _get_blocking(self, key: str, start: int | None, end: int | None) -> bytes:
        return bridge.run_sync(self._get(key, start, end))

    async def _stream(self, key: str) -> AsyncIterator[bytes]:
        data = await self._get(key, None, None)
        step = self.limits.chunk_size
        for offset in range(0, len(data), step):
            yield data[offset : offset + step]

    def _stream_blocking(self, key: str) -> Iterator[bytes]:
        return bridge.iterate_sync(self._stream(key))

    async def _head(self, key: str) -> ObjectInfo | None:
        return await self._call(self._head_blocking, key)

    def _head_blocking(self, key: str) -> ObjectInfo | None:
        return bridge.run_sync(self._head(key))

    async def _delete(self, key: str) -> bool:
        return await self._call(self._delete_blocking, key)

    def _delete_blocking(self, key: str) -> bool:
        return bridge.run_sync(self._delete(key))

    async def _list_page(self, prefix: str, limit: int, cursor: str | None) -> ListPage:
        return await self._call(self._list_page_blocking, prefix, limit, cursor)

    def _list_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> ListPage:
        return bridge.run_sync(self._list_page(prefix, limit, cursor))

    async def _url(self, key: str, expires: timedelta, method: str) -> str:
        raise NotSupported(f"{self.name}: {type(self).__name__} cannot sign URLs", resource=self.name)


class SyncBlobStore:
    """Blocking face of a :class:`BlobStore`."""

    __slots__ = ("store",)

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    def put(
        self,
        key: str,
        data: SyncBody,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        if_absent: bool = False,
        if_etag: str | None = None,
    ) -> ObjectInfo:
        s = self.store
        ctype, meta = s._check_put(key, content_type, metadata, if_absent, if_etag)
        if isinstance(data, (bytes, bytearray, memoryview)):
            return s._put_blocking(key, bytes(data), ctype, meta, if_absent, if_etag)
        if hasattr(data, "read"):
            reader = data
            data = iter(lambda: reader.read(s.limits.chunk_size), b"")
        return s._put_stream_blocking(key, iter(data), ctype, meta, if_absent, if_etag)

    def get(self, key: str, *, start: int | None = None, end: int | None = None) -> bytes:
        s = self.store
        s._check_key(key)
        s._check_range(start, end)
        return s._get_blocking(key, start, end)

    def stream(self, key: str) -> Iterator[bytes]:
        self.store._check_key(key)
        return self.store._stream_blocking(key)

    def head(self, key: str) -> ObjectInfo | None:
        self.store._check_key(key)
        return self.store._head_blocking(key)

    def delete(self, key: str) -> bool:
        self.store._check_key(key)
        return self.store._delete_blocking(key)

    def page(self, prefix: str = "", *, limit: int | None = None, cursor: str | None = None) -> ListPage:
        s = self.store
        return s._list_page_blocking(prefix, s._check_page(prefix, limit), cursor)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        cursor: str | None = None
        while True:
            result = self.page(prefix, cursor=cursor)
            yield from result.objects
            if result.cursor is None:
                return
            cursor = result.cursor

    def url(self, key: str, *, expires: timedelta = timedelta(hours=1), method: str = "GET") -> str:
        return bridge.run_sync(self.store.url(key, expires=expires, method=method))

    def create(self) -> None:
        bridge.run_sync(self.store.create())
