"""A key-value store replicated over stores of other providers, with failover.

Writes carry a hybrid logical clock (:mod:`.clock`) inside an envelope (:mod:`._envelope`)
and are applied to a member only if their clock is newer than what it holds, so members
converge by last-writer-wins whatever order writes arrive in. Each write is recorded in
a change log beside the member that took it, concurrently with the write; a replicator
ships the logged keys' current state to the other members, retrying while one is down.
A circuit breaker per member moves reads and writes to the next healthy member when one
is unavailable. ``docs/resilience.md`` states what each ``ack`` mode guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from ..errors import Conflict, InvalidArgument, ProviderError, Unavailable
from ..resources.kv import Item, KeyValueStore, KVLimits, LogEntry, Page
from ..resources.records import record
from ..resources.url import ResourceURL
from ._envelope import LOG_PREFIX, LOG_ROOM, OVERHEAD, Stored, open_item, tombstone, wrap
from ._replication import Replication
from .breaker import counts_as_down

__all__ = ["KVState", "ReplicatedKeyValueStore"]

T = TypeVar("T")
log = logging.getLogger("overcast.resilience")
_KNOWN_MAX = 10_000
_BATCH = 32
_LOG_PAGE = 100


@record(frozen=True, slots=True)
class KVState:
    """One member's envelope for a key, as the replicator ships it."""

    value: dict[str, Any]
    data: bytes
    clock: str
    expires_at: datetime | None


class ReplicatedKeyValueStore(Replication, KeyValueStore):  # type: ignore[override]
    """``replicated://NAME?primary=URL&replicas=URL ...``: one KV store over several providers."""

    offload = False

    def __init__(self, url: ResourceURL, *, name: str | None = None) -> None:
        KeyValueStore.__init__(self, url, name=name or url.host)
        self._start("kv")
        #: per member: whether it writes a document and its log entry in one call
        self._with_log = [m.store.supports("put_with_log") for m in self.members]
        self._limits: KVLimits | None = None

    @property
    def limits(self) -> KVLimits:  # type: ignore[override]
        """The smallest member's limits less the envelope and the log prefix (the members'
        are fixed: worked out once, not on every write)."""
        if self._limits is None:
            each = [m.store.limits for m in self.members]
            self._limits = KVLimits(
                max_key_bytes=min(x.max_key_bytes for x in each) - LOG_ROOM,
                max_value_bytes=min(x.max_value_bytes for x in each) - OVERHEAD,
                max_page=min(x.max_page for x in each),
            )
        return self._limits

    def _check_key(self, key: str) -> None:
        super()._check_key(key)
        if key.startswith(LOG_PREFIX):
            raise InvalidArgument(
                f"{self.name}: keys starting with {LOG_PREFIX!r} are the change log's", resource=self.name
            )
        for member in self.members:
            member.store._check_key(key)

    # -- reads -------------------------------------------------------------------------------

    async def _get(self, key: str) -> Item | None:
        index, item = await self._read("get", lambda store: store._get(key))
        if item is not None:
            stored = Stored(item)
            self.clock.observe(stored.clock)
            self._remember(index, key, stored.native, stored.clock, stored.value is not None)
        return open_item(key, item)

    async def _get_many(self, keys: list[str]) -> dict[str, Item]:
        _, found = await self._read("get_many", lambda store: store._get_many(keys))
        items = {key: open_item(key, item) for key, item in found.items()}
        return {key: item for key, item in items.items() if item is not None}

    async def _scan_page(self, prefix: str, limit: int, cursor: str | None) -> Page:
        """A page from one member; the cursor names it, so a scan goes on where it started."""
        if cursor is not None:
            index, inner = self._cursor(cursor)
            member = self.members[index]
            page = await self._on(member, member.store._scan_page(prefix, limit, inner))
        else:
            index, page = await self._read("scan", lambda store: store._scan_page(prefix, limit, None))
        items = [open_item(i.key, i) for i in page.items if not i.key.startswith(LOG_PREFIX)]
        return Page([i for i in items if i is not None], None if page.cursor is None else f"{index}:{page.cursor}")

    # -- writes ------------------------------------------------------------------------------

    async def _put(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        if if_version is not None or if_absent:
            clock, _ = await self._write_conditional(
                key, lambda clock: wrap(value, data, clock), if_version, if_absent, expires_at
            )
            return clock
        clock = self.clock.now()
        envelope, enveloped = wrap(value, data, clock)
        await self._write_members(key, KVState(envelope, enveloped, clock, expires_at), range(len(self.members)))
        return clock

    async def _delete(self, key: str, if_version: str | None) -> bool:
        expires = datetime.now(UTC) + timedelta(seconds=self.spec.horizon)
        _, existed = await self._write(
            key, tombstone, if_version, False, expires if "ttl" in self.capabilities else None
        )
        return existed

    async def _put_many(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        """Each entry as one put, at most ``_BATCH`` at once."""
        gate = asyncio.Semaphore(_BATCH)

        async def put(key: str, value: dict[str, Any], data: bytes) -> str:
            async with gate:
                return await self._put(key, value, data, None, False, expires_at)

        versions = await asyncio.gather(*(put(k, v, d) for k, v, d in entries))
        return {key: version for (key, _, _), version in zip(entries, versions, strict=True)}

    async def _write(
        self,
        key: str,
        make: Callable[[str], tuple[dict[str, Any], bytes]],
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> tuple[str, bool]:
        """Write what ``make(clock)`` builds; return (clock, whether a live item was there)."""
        if if_version is not None or if_absent:
            return await self._write_conditional(key, make, if_version, if_absent, expires_at)
        clock = self.clock.now()
        value, data = make(clock)
        _, live = await self._write_members(key, KVState(value, data, clock, expires_at), range(len(self.members)))
        return clock, live

    async def _write_conditional(
        self,
        key: str,
        make: Callable[[str], tuple[dict[str, Any], bytes]],
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> tuple[str, bool]:
        """Checked and written on the primary alone (atomically, by its native version)."""
        primary = self.members[0]
        refused = (
            f"{self.name}: conditional writes (if_version, if_absent) need the primary {primary.url}, "
            "which is unavailable; they are refused while failed over rather than risk a lost update"
        )
        if not primary.breaker.allows():
            raise Unavailable(refused, resource=self.name)
        try:
            item = await self._on(primary, primary.store._get(key))
        except ProviderError as exc:
            raise (Unavailable(refused, resource=self.name) if counts_as_down(exc) else exc) from exc
        current = None if item is None else Stored(item)
        live = current is not None and current.value is not None
        if if_absent and live:
            raise Conflict(f"{self.name}: key {key!r} exists", resource=self.name)
        if if_version is not None and (current is None or not live or current.clock != if_version):
            raise Conflict(f"{self.name}: key {key!r} is not at version {if_version!r}", resource=self.name)
        if current is not None:
            self.clock.observe(current.clock)
        clock = self.clock.now()
        value, data = make(clock)
        native = current.native if current is not None else None
        put = primary.store._put(key, value, data, native, native is None, expires_at)
        version = await self._logged(0, key, KVState(value, data, clock, expires_at), self._on(primary, put))
        self._remember(0, key, version, clock, "v" in value)
        if self.spec.ack == "all":
            await self._write_members(key, KVState(value, data, clock, expires_at), range(1, len(self.members)), 1)
        return clock, live

    def _log_entry(self, index: int, key: str, clock: str) -> Awaitable[str]:
        member = self.members[index]
        return self._on(member, member.store._put(LOG_PREFIX + key, {"c": clock}, _mark(clock), None, False, None))

    async def _apply_to(self, index: int, key: str, state: KVState, logged: bool) -> bool:  # type: ignore[override]
        """A write on member ``index`` with its log entry: one atomic call where the member has
        ``put_with_log`` (its log is in the same store), else the write and the entry at once."""
        if not logged or not self._with_log[index]:
            return await super()._apply_to(index, key, state, logged)
        return await self.apply(index, key, state.value, state.data, state.clock, state.expires_at, logged=state)

    async def apply(
        self,
        index: int,
        key: str,
        value: dict[str, Any],
        data: bytes,
        clock: str,
        expires_at: datetime | None,
        *,
        logged: KVState | None = None,
    ) -> bool:
        """Put an envelope on member ``index`` only if ``clock`` is newer than what it holds.

        Never a blind put: the member's ``_put_if_newer`` compares ``clock`` with the stored
        envelope's (one call where it has the ``put_if_newer`` capability, else a read and a
        write conditional on the version read). An older or equal clock there is not an
        error: nothing is written. Returns whether a live item was there, which only a
        delete reports (so only a tombstone not already known here reads first). With
        ``logged`` (the member has ``put_with_log``), the change-log entry is written in the
        same atomic call, and only with the document: a refused write logs nothing (the newer
        write there was logged by whoever made it).
        """
        member = self.members[index]
        known = self._known.get((index, key))
        if known is None and "_del" in value:
            item = await self._on(member, member.store._get(key))
            stored = None if item is None else Stored(item)
            known = None if stored is None else (stored.native, stored.clock, stored.value is not None)
        if known is not None and known[1] >= clock:
            return known[2]
        if logged is not None:
            version = await self._put_logged(index, key, logged)
        else:
            version = await self._on(member, member.store._put_if_newer(key, value, data, clock, expires_at))
        if version is None:
            self._known.pop((index, key), None)  # something newer is there, which this process has not seen
        else:
            self._remember(index, key, version, clock, "v" in value)
        return False if known is None else known[2]

    async def _put_logged(self, index: int, key: str, state: KVState) -> str | None:
        """The write and its log entry in one call; hand it to the replicator to ship from memory."""
        member, clock = self.members[index], state.clock
        log = LogEntry(LOG_PREFIX + key, {"c": clock}, _mark(clock))
        put = member.store._put_with_log(key, state.value, state.data, clock, state.expires_at, log)
        written: tuple[str, str] | None = await self._on(member, put)
        if written is None:
            return None
        self.replicator.written(index, key, state, written[1])
        return written[0]

    # -- what the replicator needs (see replicator.Replicated) --------------------------------

    async def log_page(self, index: int, cursor: str | None) -> tuple[list[tuple[str, str]], str | None]:
        member = self.members[index]
        page = await self._on(member, member.store._scan_page(LOG_PREFIX, _LOG_PAGE, cursor))
        return [(item.key[len(LOG_PREFIX) :], item.version) for item in page.items], page.cursor

    async def read_state(self, index: int, key: str) -> KVState | None:
        member = self.members[index]
        item = await self._on(member, member.store._get(key))
        if item is None:
            return None
        data = json.dumps(item.value, separators=(",", ":"), ensure_ascii=False).encode()
        return KVState(item.value, data, Stored(item).clock, item.expires_at)

    async def apply_state(self, index: int, key: str, state: KVState) -> bool:
        return await self.apply(index, key, state.value, state.data, state.clock, state.expires_at)

    async def drop_log(self, index: int, key: str, entry_version: str) -> None:
        member = self.members[index]
        with contextlib.suppress(Conflict):  # marked again by a newer write, which ships too
            await self._on(member, member.store._delete(LOG_PREFIX + key, entry_version))


def _mark(clock: str) -> bytes:
    """A log entry's JSON, ``{"c":CLOCK}`` (a clock needs no escaping)."""
    return b'{"c":"' + clock.encode() + b'"}'
