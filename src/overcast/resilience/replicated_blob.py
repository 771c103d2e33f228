"""A bucket replicated over buckets of other providers, with failover.

The same design as the replicated KV store (:mod:`._replication`): each write carries a
hybrid logical clock, kept in the object's metadata (``occlock``), and is applied to a
member only if newer, through the member's own conditional write (``if_etag`` /
``if_absent``); a delete is a tombstone, an empty object marked ``ocdeleted``; the change
log sits beside each member under ``~oc-log~/``. ETags are the serving member's own, so
``if_etag`` is checked on the primary, where conditional writes go. A presigned PUT is
refused: it would write behind the change log's back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from typing import Any

from ..errors import Conflict, InvalidArgument, NotFound, NotSupported, ProviderError, Unavailable
from ..resources.blob import BlobLimits, BlobStore, ListPage, ObjectInfo
from ..resources.records import field, record
from ..resources.url import ResourceURL
from ._envelope import LOG_PREFIX, LOG_ROOM, ZERO
from ._replication import Replication
from .breaker import counts_as_down
from .clock import is_clock

__all__ = ["BlobState", "ReplicatedBlobStore"]

CLOCK, DELETED = "occlock", "ocdeleted"
_OVERHEAD = 80  # metadata bytes the clock and the tombstone mark take
_CONTENDED = 16
_LOG_PAGE = 100


@record(frozen=True, slots=True)
class BlobState:
    """One member's object for a key, as the replicator ships it (``deleted``: a tombstone)."""

    data: bytes
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)
    clock: str = ZERO
    deleted: bool = False

    def stored_metadata(self) -> dict[str, str]:
        return {**self.metadata, CLOCK: self.clock, **({DELETED: "1"} if self.deleted else {})}


def _clock(info: ObjectInfo) -> str:
    clock = info.metadata.get(CLOCK, ZERO)
    return clock if is_clock(clock) else ZERO


def _live(info: ObjectInfo | None) -> bool:
    return info is not None and DELETED not in info.metadata


def _shown(info: ObjectInfo) -> ObjectInfo:
    """The object as the user sees it: without the replication's metadata."""
    meta = {k: v for k, v in info.metadata.items() if k not in (CLOCK, DELETED)}
    return ObjectInfo(info.key, info.size, info.etag, info.content_type, meta, info.last_modified)


class ReplicatedBlobStore(Replication, BlobStore):
    """``replicated://NAME?primary=URL&replicas=URL ...`` for buckets."""

    offload = False

    def __init__(self, url: ResourceURL, *, name: str | None = None) -> None:
        BlobStore.__init__(self, url, name=name or url.host)
        self._start("bucket")

    @property
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        """The members' in common, where ``url`` becomes ``signed_get``: no presigned PUT."""
        common = frozenset.intersection(*(frozenset(m.store.capabilities) for m in self.members))
        return (common - {"url"}) | ({"signed_get"} if "url" in common else frozenset())

    @property
    def limits(self) -> BlobLimits:  # type: ignore[override]
        each = [m.store.limits for m in self.members]
        return BlobLimits(
            max_key_bytes=min(x.max_key_bytes for x in each) - LOG_ROOM,
            max_metadata_bytes=min(x.max_metadata_bytes for x in each) - _OVERHEAD,
            max_page=min(x.max_page for x in each),
            chunk_size=min(x.chunk_size for x in each),
        )

    def _check_key(self, key: str) -> None:
        super()._check_key(key)
        if key.startswith(LOG_PREFIX):
            raise InvalidArgument(f"{self.name}: keys starting with {LOG_PREFIX!r} are the change log's")
        for member in self.members:
            member.store._check_key(key)

    def _check_put(
        self, key: str, content_type: str | None, metadata: Any, if_absent: bool, if_etag: str | None
    ) -> Any:
        if metadata and (CLOCK in metadata or DELETED in metadata):
            raise InvalidArgument(f"{self.name}: metadata names {CLOCK!r} and {DELETED!r} are the replication's")
        return super()._check_put(key, content_type, metadata, if_absent, if_etag)

    # -- reads -------------------------------------------------------------------------------

    async def _head(self, key: str) -> ObjectInfo | None:
        _, info = await self._read("head", lambda store: store._head(key))
        return _shown(info) if _live(info) else None

    async def _get(self, key: str, start: int | None, end: int | None) -> bytes:
        async def both(store: BlobStore) -> bytes:
            info, data = await asyncio.gather(store._head(key), store._get(key, start, end), return_exceptions=True)
            if isinstance(info, BaseException) and not isinstance(info, NotFound):
                raise info
            if not isinstance(info, ObjectInfo) or not _live(info):
                raise NotFound(f"{self.name}: no object {key!r}", resource=self.name)
            if isinstance(data, BaseException):
                raise data
            return data

        _, found = await self._read("get", both)
        return found

    async def _stream(self, key: str) -> AsyncIterator[bytes]:
        yield await self._get(key, None, None)  # reads the metadata too: a tombstone is NotFound

    async def _list_page(self, prefix: str, limit: int, cursor: str | None) -> ListPage:
        """A page from one member, without the log and tombstones; the cursor names the member."""
        if cursor is not None:
            index, inner = self._cursor(cursor)
            member = self.members[index]
            page = await self._on(member, member.store._list_page(prefix, limit, inner))
        else:
            index, page = await self._read("list", lambda store: store._list_page(prefix, limit, None))
            member = self.members[index]
        found = [info for info in page.objects if not info.key.startswith(LOG_PREFIX)]
        empty = [info.key for info in found if info.size == 0]  # a tombstone is empty: ask which
        heads = await asyncio.gather(*(self._on(member, member.store._head(k)) for k in empty))
        dead = {k for k, info in zip(empty, heads, strict=True) if not _live(info)}
        objects = [_shown(info) for info in found if info.key not in dead]
        return ListPage(objects, None if page.cursor is None else f"{index}:{page.cursor}")

    async def _url(self, key: str, expires: timedelta, method: str) -> str:
        if method == "PUT":
            raise NotSupported(
                f"{self.name}: a presigned PUT on a replicated bucket would write behind its change log; "
                "upload through the app (bucket.put) instead",
                resource=self.name,
            )
        _, url = await self._read("sign a URL", lambda store: store._url(key, expires, method))
        return str(url)

    # -- writes ------------------------------------------------------------------------------

    async def _put(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], if_absent: bool, if_etag: str | None
    ) -> ObjectInfo:
        return await self._write(key, BlobState(data, content_type, metadata), if_absent, if_etag)

    async def _delete(self, key: str) -> bool:
        clock = self.clock.now()
        state = BlobState(b"", "application/octet-stream", {}, clock, deleted=True)
        _, live = await self._write_members(key, state, range(len(self.members)))
        return live

    async def _write(self, key: str, unclocked: BlobState, if_absent: bool, if_etag: str | None) -> ObjectInfo:
        if if_absent or if_etag is not None:
            return await self._write_conditional(key, unclocked, if_absent, if_etag)
        state = BlobState(unclocked.data, unclocked.content_type, unclocked.metadata, self.clock.now())
        index, _ = await self._write_members(key, state, range(len(self.members)))
        known = self._known.get((index, key))  # the ETag of the member that took it
        etag = known[0] if known is not None and known[0] is not None else ""
        return ObjectInfo(key, len(state.data), etag, state.content_type, dict(state.metadata))

    async def _write_conditional(
        self, key: str, unclocked: BlobState, if_absent: bool, if_etag: str | None
    ) -> ObjectInfo:
        primary = self.members[0]
        refused = (
            f"{self.name}: conditional writes (if_absent, if_etag) need the primary {primary.url}, "
            "which is unavailable; they are refused while failed over rather than risk a lost update"
        )
        if not primary.breaker.allows():
            raise Unavailable(refused, resource=self.name)
        try:
            current = await self._on(primary, primary.store._head(key))
        except ProviderError as exc:
            raise (Unavailable(refused, resource=self.name) if counts_as_down(exc) else exc) from exc
        if if_absent and _live(current):
            raise Conflict(f"{self.name}: object {key!r} exists", resource=self.name)
        if if_etag is not None and (current is None or not _live(current) or current.etag != if_etag):
            raise Conflict(f"{self.name}: object {key!r} is not at ETag {if_etag!r}", resource=self.name)
        if current is not None:
            self.clock.observe(_clock(current))
        state = BlobState(unclocked.data, unclocked.content_type, unclocked.metadata, self.clock.now())
        native = current.etag if current is not None else None
        put = primary.store._put(key, state.data, state.content_type, state.stored_metadata(), native is None, native)
        info = await self._logged(0, key, state, self._on(primary, put))
        self._remember(0, key, info.etag, state.clock, True)
        if self.spec.ack == "all":
            await self._write_members(key, state, range(1, len(self.members)), 1)
        return _shown(info)

    def _log_entry(self, index: int, key: str, clock: str) -> Awaitable[str]:
        member = self.members[index]

        async def put() -> str:
            info = await member.store._put(LOG_PREFIX + key, clock.encode(), "text/plain", {}, False, None)
            return str(info.etag)

        return self._on(member, put())

    async def apply_state(self, index: int, key: str, state: BlobState) -> bool:
        """Put ``state`` on member ``index`` only if its clock is newer than what it holds,
        through the member's conditional write; whether a live object was there."""
        member = self.members[index]
        known = self._known.get((index, key))
        for _ in range(_CONTENDED):
            if known is None:
                info = await self._on(member, member.store._head(key))
                known = None if info is None else (info.etag, _clock(info), _live(info))
            if known is not None and known[1] >= state.clock:
                return known[2]
            native = None if known is None else known[0]
            put = member.store._put(
                key, state.data, state.content_type, state.stored_metadata(), native is None, native
            )
            try:
                written = await self._on(member, put)
            except Conflict:
                known = None
                continue
            self._remember(index, key, written.etag, state.clock, not state.deleted)
            return False if known is None else known[2]
        raise Unavailable(f"{self.name}: object {key!r} on {member} kept moving", resource=self.name)

    # -- what the replicator needs -------------------------------------------------------------

    async def log_page(self, index: int, cursor: str | None) -> tuple[list[tuple[str, str]], str | None]:
        member = self.members[index]
        page = await self._on(member, member.store._list_page(LOG_PREFIX, _LOG_PAGE, cursor))
        return [(info.key[len(LOG_PREFIX) :], info.etag) for info in page.objects], page.cursor

    async def read_state(self, index: int, key: str) -> BlobState | None:
        member = self.members[index]
        info = await self._on(member, member.store._head(key))
        if info is None:
            return None
        try:
            data = await self._on(member, member.store._get(key, None, None))
        except NotFound:
            return None
        meta = {k: v for k, v in info.metadata.items() if k not in (CLOCK, DELETED)}
        return BlobState(data, info.content_type, meta, _clock(info), not _live(info))

    async def drop_log(self, index: int, key: str, entry_version: str) -> None:
        """Remove the log entry if it is still the one shipped (buckets have no conditional
        delete: a write logged between this check and the delete ships from its writer's
        memory, or from the next ``overcast repair``)."""
        member = self.members[index]
        entry = await self._on(member, member.store._head(LOG_PREFIX + key))
        if entry is not None and entry.etag == entry_version:
            with contextlib.suppress(NotFound):
                await self._on(member, member.store._delete(LOG_PREFIX + key))
