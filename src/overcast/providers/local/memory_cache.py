"""A cache in process memory: ``memory://NAME?max_items=&max_bytes=&ttl=``."""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import ClassVar

from ...errors import ConfigError, InvalidArgument
from ...resources.cache import Cache
from ...resources.url import ResourceURL
from ._memory import _state

__all__ = ["MemoryCache"]


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
        max_items = loc.option_int("max_items", None, minimum=1, resource=self.name)
        max_bytes = loc.option_int("max_bytes", None, minimum=1, unit="bytes", resource=self.name)
        self.default_ttl = loc.option_seconds(
            "ttl", None, positive=True, maximum=self.limits.max_ttl, resource=self.name
        )
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
