"""Cache: short-lived JSON values by key, with TTL and atomic increments.

A cache may drop any value at any time (eviction, restart); code must treat a miss
as normal. ``incr`` is atomic across every client of the same cache and starts
from 0 when the key is absent.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from ..errors import InvalidArgument
from . import bridge
from .base import Resource
from .keys import check_key
from .records import record

__all__ = ["Cache", "CacheLimits", "SyncCache"]


@record(frozen=True, slots=True)
class CacheLimits:
    """Checked before any call; Momento's 1 MB item is the strictest of the services."""

    max_key_bytes: int = 1024
    max_value_bytes: int = 1024 * 1024
    max_ttl: float = 365 * 24 * 3600.0


class Cache(Resource):
    """JSON values with TTL. Capabilities: ``multiprocess`` (shared by processes)."""

    kind: ClassVar[str] = "cache"
    limits: ClassVar[CacheLimits] = CacheLimits()
    required_hooks: ClassVar[tuple[str, ...]] = ("_get", "_set", "_delete", "_incr")
    default_ttl: float | None = None

    async def get(self, key: str) -> Any | None:
        """Return the value at ``key``, or None on a miss."""
        self._check_key(key)
        data = await self._get(key)
        return None if data is None else _decode(data)

    async def set(self, key: str, value: Any, *, ttl: timedelta | float | None = None) -> None:
        """Store a JSON value, expiring after ``ttl`` (the cache's default if None)."""
        data, secs = self._check_set(key, value, ttl)
        await self._set(key, data, secs)

    async def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was there."""
        self._check_key(key)
        return await self._delete(key)

    async def incr(self, key: str, by: int = 1) -> int:
        """Add ``by`` to the integer at ``key`` (0 if absent) atomically; return the result."""
        self._check_incr(key, by)
        return await self._incr(key, by)

    @property
    def sync(self) -> SyncCache:
        return SyncCache(self)

    def _check_key(self, key: str) -> None:
        check_key(key, max_bytes=self.limits.max_key_bytes, resource=self.name)

    def _check_incr(self, key: str, by: int) -> None:
        self._check_key(key)
        if isinstance(by, bool) or not isinstance(by, int):
            raise InvalidArgument(f"{self.name}: incr amount must be an int, got {by!r}", resource=self.name)

    def _check_set(self, key: str, value: Any, ttl: timedelta | float | None) -> tuple[bytes, float | None]:
        self._check_key(key)
        import json  # on first use, not with the module: declaring a cache needs none of it

        try:
            data = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(
                f"{self.name}: value for {key!r} is not JSON-serializable: {exc}", resource=self.name
            ) from exc
        if len(data) > self.limits.max_value_bytes:
            raise InvalidArgument(
                f"{self.name}: value for {key!r} is {len(data)} bytes as JSON; "
                f"the limit is {self.limits.max_value_bytes}",
                resource=self.name,
            )
        if ttl is None:
            return data, self.default_ttl
        secs = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
        if isinstance(secs, bool) or not isinstance(secs, (int, float)) or not 0 < secs <= self.limits.max_ttl:
            raise InvalidArgument(
                f"{self.name}: ttl must be between 0 and {self.limits.max_ttl:g} seconds, got {ttl!r}",
                resource=self.name,
            )
        return data, float(secs)

    # -- hooks: values travel as JSON bytes ------------------------------------------

    async def _get(self, key: str) -> bytes | None:
        return await self._call(self._get_blocking, key)

    def _get_blocking(self, key: str) -> bytes | None:
        return bridge.run_sync(self._get(key))

    async def _set(self, key: str, data: bytes, ttl: float | None) -> None:
        await self._call(self._set_blocking, key, data, ttl)

    def _set_blocking(self, key: str, data: bytes, ttl: float | None) -> None:
        bridge.run_sync(self._set(key, data, ttl))

    async def _delete(self, key: str) -> bool:
        return await self._call(self._delete_blocking, key)

    def _delete_blocking(self, key: str) -> bool:
        return bridge.run_sync(self._delete(key))

    async def _incr(self, key: str, by: int) -> int:
        return await self._call(self._incr_blocking, key, by)

    def _incr_blocking(self, key: str, by: int) -> int:
        return bridge.run_sync(self._incr(key, by))


class SyncCache:
    """Blocking face of a :class:`Cache`."""

    __slots__ = ("cache",)

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def get(self, key: str) -> Any | None:
        self.cache._check_key(key)
        data = self.cache._get_blocking(key)
        return None if data is None else _decode(data)

    def set(self, key: str, value: Any, *, ttl: timedelta | float | None = None) -> None:
        data, secs = self.cache._check_set(key, value, ttl)
        self.cache._set_blocking(key, data, secs)

    def delete(self, key: str) -> bool:
        self.cache._check_key(key)
        return self.cache._delete_blocking(key)

    def incr(self, key: str, by: int = 1) -> int:
        self.cache._check_incr(key, by)
        return self.cache._incr_blocking(key, by)


def _decode(data: bytes) -> Any:
    import json  # on first use, not with the module: declaring a cache needs none of it

    return json.loads(data)
