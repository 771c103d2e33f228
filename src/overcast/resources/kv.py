"""Key-value documents: JSON objects by string key, versioned, with TTL.

Every item carries an opaque version that changes on each write.
``put(..., if_version=v)`` and ``put(..., if_absent=True)`` raise
:class:`~overcast.errors.Conflict` when the item moved, which makes read-modify-write
safe without locks. Expired items are absent to every read even where the backing
service deletes them lazily.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, NamedTuple

from ..errors import Conflict, InvalidArgument
from . import bridge
from .base import Resource
from .keys import check_key
from .records import record

__all__ = [
    "Item",
    "KVLimits",
    "KeyValueStore",
    "LogEntry",
    "ORDER_FIELD",
    "Page",
    "SyncKeyValueStore",
    "encode_document",
    "expiry_from_ttl",
    "order_of",
]

#: The top-level field of a document that holds its order for ``put_if_newer`` (a
#: replicated store's envelope keeps its clock there).
ORDER_FIELD = "_oc"
#: Tries of the read + conditional-put fallback of ``put_if_newer`` before it gives up.
_CONTENDED = 16


def order_of(value: Mapping[str, Any]) -> str:
    """The order of a stored document: its ``ORDER_FIELD`` string, else ``""`` (older than any)."""
    order = value.get(ORDER_FIELD)
    return order if isinstance(order, str) else ""


@record(frozen=True, slots=True)
class Item:
    """One stored document.

    Attributes:
        key: its key.
        value: the JSON object stored.
        version: opaque; changes on every write. Pass it as ``if_version``.
        expires_at: when the item stops being readable (UTC), or None.
    """

    key: str
    value: dict[str, Any]
    version: str
    expires_at: datetime | None = None


@record(frozen=True, slots=True)
class Page:
    """One page of a scan: its items and the cursor to pass for the next page (None at the end)."""

    items: list[Item]
    cursor: str | None


@record(frozen=True, slots=True)
class KVLimits:
    """Limits checked before any call. The embedded defaults are the smallest of the clouds'
    (DynamoDB's 400 KB item), so an app that runs locally fits everywhere."""

    max_key_bytes: int = 1024
    max_value_bytes: int = 400 * 1024
    max_page: int = 1000


def expiry_from_ttl(ttl: timedelta | float | int | None, *, resource: str) -> datetime | None:
    """Turn a TTL (a timedelta or seconds) into an absolute UTC expiry."""
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
        raise InvalidArgument(f"{resource}: ttl must be a positive duration, got {ttl!r}", resource=resource)
    return datetime.now(UTC) + timedelta(seconds=seconds)


def encode_document(value: object, *, key: str, limits: KVLimits, resource: str) -> bytes:
    """Serialize a document to compact UTF-8 JSON, checking its type and size."""
    if not isinstance(value, Mapping):
        raise InvalidArgument(
            f"{resource}: value for key {key!r} must be a JSON object (dict), not {type(value).__name__}",
            resource=resource,
        )
    import json  # on first use, not with the module: declaring a store needs none of it

    try:
        data = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(
            f"{resource}: value for key {key!r} is not JSON-serializable: {exc}", resource=resource
        ) from exc
    if len(data) > limits.max_value_bytes:
        raise InvalidArgument(
            f"{resource}: value for key {key!r} is {len(data)} bytes as JSON; "
            f"the limit is {limits.max_value_bytes} bytes",
            resource=resource,
        )
    return data


class LogEntry(NamedTuple):
    """A change-log entry that ``_put_with_log`` writes with a document: its key, value and encoding."""

    key: str
    value: dict[str, Any]
    data: bytes


class KeyValueStore(Resource):
    """JSON documents by key. Providers implement the ``_get``/``_put``/... hooks.

    Capabilities: ``ttl``, ``ordered_scan`` (scan yields keys in code-point order),
    ``multiprocess`` (several processes may share it), ``put_if_newer`` (the
    ``_put_if_newer`` hook is one atomic call to the service; without it, the hook reads
    and writes conditionally on the version read, which is as safe and costs a round trip),
    ``put_with_log`` (the ``_put_with_log`` hook writes a document only if newer and a second
    key beside it in one atomic call: a replicated store's write and its change-log entry).
    """

    kind: ClassVar[str] = "kv"
    limits: ClassVar[KVLimits] = KVLimits()
    required_hooks: ClassVar[tuple[str, ...]] = ("_get", "_put", "_delete", "_scan_page")

    # -- public, async -------------------------------------------------------------

    async def get(self, key: str) -> Item | None:
        """Return the item stored at ``key``, or None if absent or expired."""
        self._check_key(key)
        return await self._get(key)

    async def put(
        self,
        key: str,
        value: Mapping[str, Any],
        *,
        if_version: str | None = None,
        if_absent: bool = False,
        ttl: timedelta | float | None = None,
    ) -> str:
        """Store ``value`` at ``key`` and return its new version.

        Raises:
            Conflict: ``if_version`` is not the current version, or ``if_absent``
                and an item exists.
            InvalidArgument: the key or value breaks a rule or a limit.
        """
        data, expires_at = self._prepare_put(key, value, if_version, if_absent, ttl)
        return await self._put(key, dict(value), data, if_version, if_absent, expires_at)

    async def delete(self, key: str, *, if_version: str | None = None) -> bool:
        """Delete ``key``; return whether it existed. With ``if_version``, raise Conflict if it moved."""
        self._check_key(key)
        return await self._delete(key, if_version)

    async def page(self, prefix: str = "", *, limit: int | None = None, cursor: str | None = None) -> Page:
        """Return one page of items whose key starts with ``prefix``, and the cursor to continue."""
        size = self._check_page(prefix, limit)
        return await self._scan_page(prefix, size, cursor)

    async def scan(self, prefix: str = "", *, limit: int | None = None) -> AsyncIterator[Item]:
        """Yield every item whose key starts with ``prefix`` (at most ``limit``), paging internally."""
        remaining = self._check_limit(limit)
        cursor: str | None = None
        while remaining is None or remaining > 0:
            size = self.limits.max_page if remaining is None else min(remaining, self.limits.max_page)
            result = await self.page(prefix, limit=size, cursor=cursor)
            for item in result.items:
                yield item
            if remaining is not None:
                remaining -= len(result.items)
            if result.cursor is None:
                return
            cursor = result.cursor

    async def get_many(self, keys: Iterable[str]) -> dict[str, Item]:
        """Return the items that exist among ``keys``, by key."""
        wanted = self._check_keys(keys)
        return await self._get_many(wanted) if wanted else {}

    async def put_many(
        self, items: Mapping[str, Mapping[str, Any]], *, ttl: timedelta | float | None = None
    ) -> dict[str, str]:
        """Store several documents unconditionally; return their new versions by key."""
        entries, expires_at = self._prepare_many(items, ttl)
        return await self._put_many(entries, expires_at) if entries else {}

    @property
    def sync(self) -> SyncKeyValueStore:
        """The same store with blocking methods, for WSGI views and plain functions."""
        return SyncKeyValueStore(self)

    # -- validation shared by both faces --------------------------------------------

    def _check_key(self, key: str) -> None:
        check_key(key, max_bytes=self.limits.max_key_bytes, resource=self.name)

    def _check_keys(self, keys: Iterable[str]) -> list[str]:
        if isinstance(keys, str):
            raise InvalidArgument(f"{self.name}: get_many takes a list of keys, not a str", resource=self.name)
        wanted = list(dict.fromkeys(keys))
        for key in wanted:
            self._check_key(key)
        return wanted

    def _check_limit(self, limit: int | None) -> int | None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidArgument(f"{self.name}: limit must be a positive int, got {limit!r}", resource=self.name)
        return limit

    def _check_page(self, prefix: str, limit: int | None) -> int:
        if not isinstance(prefix, str):
            raise InvalidArgument(f"{self.name}: prefix must be a str", resource=self.name)
        if prefix:
            self._check_key(prefix)
        size = self._check_limit(limit) or self.limits.max_page
        return min(size, self.limits.max_page)

    def _prepare_put(
        self,
        key: str,
        value: Mapping[str, Any],
        if_version: str | None,
        if_absent: bool,
        ttl: timedelta | float | None,
    ) -> tuple[bytes, datetime | None]:
        if if_version is not None and if_absent:
            raise InvalidArgument(f"{self.name}: pass if_version or if_absent, not both", resource=self.name)
        if if_version is not None and not isinstance(if_version, str):
            raise InvalidArgument(f"{self.name}: if_version must be a str version", resource=self.name)
        expires_at = expiry_from_ttl(ttl, resource=self.name)
        self._check_key(key)
        return encode_document(value, key=key, limits=self.limits, resource=self.name), expires_at

    def _prepare_many(
        self, items: Mapping[str, Mapping[str, Any]], ttl: timedelta | float | None
    ) -> tuple[list[tuple[str, dict[str, Any], bytes]], datetime | None]:
        if not isinstance(items, Mapping):
            raise InvalidArgument(f"{self.name}: put_many takes a dict of key -> value", resource=self.name)
        entries = []
        for key, value in items.items():
            data, _ = self._prepare_put(key, value, None, False, None)
            entries.append((key, dict(value), data))
        return entries, expiry_from_ttl(ttl, resource=self.name)

    # -- hooks: implement the async ones or the blocking ones ------------------------

    async def _get(self, key: str) -> Item | None:
        return await self._call(self._get_blocking, key)

    def _get_blocking(self, key: str) -> Item | None:
        return bridge.run_sync(self._get(key))

    async def _put(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        return await self._call(self._put_blocking, key, value, data, if_version, if_absent, expires_at)

    def _put_blocking(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        return bridge.run_sync(self._put(key, value, data, if_version, if_absent, expires_at))

    async def _delete(self, key: str, if_version: str | None) -> bool:
        return await self._call(self._delete_blocking, key, if_version)

    def _delete_blocking(self, key: str, if_version: str | None) -> bool:
        return bridge.run_sync(self._delete(key, if_version))

    async def _scan_page(self, prefix: str, limit: int, cursor: str | None) -> Page:
        return await self._call(self._scan_page_blocking, prefix, limit, cursor)

    def _scan_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> Page:
        return bridge.run_sync(self._scan_page(prefix, limit, cursor))

    async def _put_if_newer(
        self, key: str, value: dict[str, Any], data: bytes, order: str, expires_at: datetime | None
    ) -> str | None:
        """Store ``value`` only if ``key`` is absent (or expired) or holds a document of a lower
        order (:func:`order_of`, compared by code point); return its new version, or None
        when what is stored is as new or newer and nothing was written.

        ``order`` is ``value``'s own ``ORDER_FIELD``. For wrappers that apply writes by clock
        (replication); a provider with the ``put_if_newer`` capability does it in one call.
        """
        if type(self)._put_if_newer_blocking is not KeyValueStore._put_if_newer_blocking:
            return await self._call(self._put_if_newer_blocking, key, value, data, order, expires_at)
        for _ in range(_CONTENDED):
            item = await self._get(key)
            if item is not None and order_of(item.value) >= order:
                return None
            try:
                version = None if item is None else item.version
                return await self._put(key, value, data, version, item is None, expires_at)
            except Conflict:
                continue  # written meanwhile: compare with what is there now
        raise self._kept_moving(key)

    def _put_if_newer_blocking(
        self, key: str, value: dict[str, Any], data: bytes, order: str, expires_at: datetime | None
    ) -> str | None:
        if type(self)._put_if_newer is not KeyValueStore._put_if_newer:
            return bridge.run_sync(self._put_if_newer(key, value, data, order, expires_at))
        for _ in range(_CONTENDED):
            item = self._get_blocking(key)
            if item is not None and order_of(item.value) >= order:
                return None
            try:
                version = None if item is None else item.version
                return self._put_blocking(key, value, data, version, item is None, expires_at)
            except Conflict:
                continue
        raise self._kept_moving(key)

    async def _put_with_log(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        order: str,
        expires_at: datetime | None,
        log: LogEntry,
    ) -> tuple[str, str] | None:
        """``_put_if_newer`` of ``key`` and, if it was written, a plain put of ``log.key``
        (no expiry); (the document's version, the log entry's version), or None when nothing
        was written. With the ``put_with_log`` capability both are one atomic call (both land
        or neither); this fallback makes them two calls, one after the other.
        """
        if type(self)._put_with_log_blocking is not KeyValueStore._put_with_log_blocking:
            return await self._call(self._put_with_log_blocking, key, value, data, order, expires_at, log)
        version = await self._put_if_newer(key, value, data, order, expires_at)
        if version is None:
            return None
        return version, await self._put(log.key, log.value, log.data, None, False, None)

    def _put_with_log_blocking(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        order: str,
        expires_at: datetime | None,
        log: LogEntry,
    ) -> tuple[str, str] | None:
        if type(self)._put_with_log is not KeyValueStore._put_with_log:
            return bridge.run_sync(self._put_with_log(key, value, data, order, expires_at, log))
        version = self._put_if_newer_blocking(key, value, data, order, expires_at)
        if version is None:
            return None
        return version, self._put_blocking(log.key, log.value, log.data, None, False, None)

    def _kept_moving(self, key: str) -> Conflict:
        return Conflict(
            f"{self.name}: key {key!r} kept moving; put_if_newer gave up after {_CONTENDED} tries", resource=self.name
        )

    async def _get_many(self, keys: list[str]) -> dict[str, Item]:
        return await self._call(self._get_many_blocking, keys)

    def _get_many_blocking(self, keys: list[str]) -> dict[str, Item]:
        found = {}
        for key in keys:
            item = self._get_blocking(key)
            if item is not None:
                found[key] = item
        return found

    async def _put_many(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        return await self._call(self._put_many_blocking, entries, expires_at)

    def _put_many_blocking(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        return {key: self._put_blocking(key, value, data, None, False, expires_at) for key, value, data in entries}


class SyncKeyValueStore:
    """Blocking face of a :class:`KeyValueStore`; same methods, same semantics."""

    __slots__ = ("store",)

    def __init__(self, store: KeyValueStore) -> None:
        self.store = store

    def get(self, key: str) -> Item | None:
        s = self.store
        s._check_key(key)
        return s._get_blocking(key)

    def put(
        self,
        key: str,
        value: Mapping[str, Any],
        *,
        if_version: str | None = None,
        if_absent: bool = False,
        ttl: timedelta | float | None = None,
    ) -> str:
        s = self.store
        data, expires_at = s._prepare_put(key, value, if_version, if_absent, ttl)
        return s._put_blocking(key, dict(value), data, if_version, if_absent, expires_at)

    def delete(self, key: str, *, if_version: str | None = None) -> bool:
        s = self.store
        s._check_key(key)
        return s._delete_blocking(key, if_version)

    def page(self, prefix: str = "", *, limit: int | None = None, cursor: str | None = None) -> Page:
        s = self.store
        return s._scan_page_blocking(prefix, s._check_page(prefix, limit), cursor)

    def scan(self, prefix: str = "", *, limit: int | None = None) -> Iterator[Item]:
        s = self.store
        remaining = s._check_limit(limit)
        cursor: str | None = None
        while remaining is None or remaining > 0:
            size = s.limits.max_page if remaining is None else min(remaining, s.limits.max_page)
            result = self.page(prefix, limit=size, cursor=cursor)
            yield from result.items
            if remaining is not None:
                remaining -= len(result.items)
            if result.cursor is None:
                return
            cursor = result.cursor

    def get_many(self, keys: Iterable[str]) -> dict[str, Item]:
        s = self.store
        wanted = s._check_keys(keys)
        return s._get_many_blocking(wanted) if wanted else {}

    def put_many(
        self, items: Mapping[str, Mapping[str, Any]], *, ttl: timedelta | float | None = None
    ) -> dict[str, str]:
        s = self.store
        entries, expires_at = s._prepare_many(items, ttl)
        return s._put_many_blocking(entries, expires_at) if entries else {}

    def create(self) -> None:
        bridge.run_sync(self.store.create())
