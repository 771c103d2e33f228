"""Key-value documents in process memory: ``memory://NAME``."""

from __future__ import annotations

import bisect
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from ...errors import Conflict
from ...resources.kv import Item, KeyValueStore, Page
from ...resources.url import ResourceURL
from ._memory import _after_cursor, _drop_key, _new_version, _state

__all__ = ["MemoryKeyValueStore"]


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
