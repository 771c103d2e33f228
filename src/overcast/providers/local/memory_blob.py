"""Objects in process memory: ``memory://NAME``."""

from __future__ import annotations

import bisect
import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import ClassVar

from ...errors import Conflict, NotFound
from ...resources.blob import BlobStore, ListPage, ObjectInfo
from ...resources.records import replace
from ...resources.url import ResourceURL
from ._memory import _after_cursor, _drop_key, _state

__all__ = ["MemoryBlobStore"]


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
