"""Ships a replicated store's change log: for each dirty key, the source's current state.

State, not operations: the replicator reads the key's item where it was logged and
applies it by clock to every other member, so shipping is idempotent and needs no
order. A log entry is removed (conditionally on its version, so a newer mark stays)
only once every other member holds the state or something newer; while a member is
down its entries wait. In-process it runs on the portal loop, woken by each write and
otherwise every ``idle`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, ProviderError
from ..resources import bridge
from ..resources.kv import Item
from ..resources.records import record
from ._envelope import LOG_PREFIX, Stored
from .breaker import counts_as_down

if TYPE_CHECKING:
    from .replicated_kv import ReplicatedKeyValueStore

__all__ = ["Replicator"]

log = logging.getLogger("overcast.resilience")
_PAGE = 100
#: writes kept in memory for shipping; past it they ship from the log on the next scan
_DIRECT_MAX = 10_000


@record(frozen=True, slots=True)
class _Written:
    index: int
    key: str
    value: dict[str, Any]
    data: bytes
    clock: str
    expires_at: datetime | None
    entry_version: str


class Replicator:
    """The change-log shipper of one replicated store."""

    def __init__(self, store: ReplicatedKeyValueStore, *, idle: float = 1.0) -> None:
        self.store = store
        self.idle = idle
        self.shipped = 0
        #: the last lags (seconds from a write's clock to a member applying it), for doctor and benchmarks
        self.lags: deque[float] = deque(maxlen=10_000)
        self._future: Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._stopped = False
        self._lock = threading.Lock()
        self._direct: deque[_Written] = deque()

    def written(
        self,
        index: int,
        key: str,
        value: dict[str, Any],
        data: bytes,
        clock: str,
        expires_at: datetime | None,
        entry_version: str,
    ) -> None:
        """A write this process just logged beside member ``index``: ship it from memory, without
        reading the log or the source (the log still has it if this process dies first)."""
        if len(self._direct) < _DIRECT_MAX:
            self._direct.append(_Written(index, key, value, data, clock, expires_at, entry_version))
        self.wake()

    async def run_once(self, *, scan: bool = True) -> int:
        """Ship the writes made here, then (with ``scan``, or if one of them could not be
        shipped) every reachable member's log; the number of keys shipped."""
        shipped, complete = await self._ship_written()
        if scan or not complete:
            shipped += await self._ship_logs()
        self.shipped += shipped
        return shipped

    async def _ship_written(self) -> tuple[int, bool]:
        shipped, complete = 0, True
        while self._direct:
            if self._stopped and self._in_background():
                return shipped, False
            written = self._direct.popleft()
            w = written
            others = [i for i in range(len(self.store.members)) if i != w.index]
            applied = [await self._apply(i, w.key, w.value, w.data, w.clock, w.expires_at) for i in others]
            if not all(applied):
                complete = False  # the log entry stays: a scan ships it when the member answers
                continue
            source = self.store.members[written.index]
            try:
                await self.store._on(source, source.store._delete(LOG_PREFIX + written.key, written.entry_version))
            except Conflict:
                pass  # marked again by a newer write, which ships too
            except ProviderError as exc:
                if not counts_as_down(exc):
                    raise
                complete = False
                continue
            shipped += 1
        return shipped, complete

    async def _ship_logs(self) -> int:
        shipped = 0
        for index, member in enumerate(self.store.members):
            if not member.breaker.allows():
                continue
            try:
                shipped += await self._ship_log(index)
            except ProviderError as exc:
                if not counts_as_down(exc):
                    raise
                log.debug("replication from %s waits: %s", member, exc)
        return shipped

    async def pending(self) -> int:
        """How many log entries wait beside the members that answer (for doctor and tests)."""
        total = 0
        for member in self.store.members:
            cursor: str | None = None
            while True:
                page = await self.store._on(member, member.store._scan_page(LOG_PREFIX, _PAGE, cursor))
                total += len(page.items)
                if page.cursor is None:
                    break
                cursor = page.cursor
        return total

    async def _ship_log(self, index: int) -> int:
        member, cursor, shipped = self.store.members[index], None, 0
        while True:
            page = await self.store._on(member, member.store._scan_page(LOG_PREFIX, _PAGE, cursor))
            for entry in page.items:
                if self._stopped and self._in_background():
                    return shipped
                shipped += await self._ship(index, entry)
            if page.cursor is None:
                return shipped
            cursor = page.cursor

    async def _ship(self, index: int, entry: Item) -> int:
        """Apply the logged key's current state to every other member; drop the entry when all hold it."""
        store = self.store
        source, key = store.members[index], entry.key[len(LOG_PREFIX) :]
        item = await store._on(source, source.store._get(key))
        if item is not None:
            stored, data = Stored(item), json.dumps(item.value, separators=(",", ":"), ensure_ascii=False).encode()
            everywhere = True
            for other in range(len(store.members)):
                if other == index:
                    continue
                if not await self._apply(other, key, item.value, data, stored.clock, item.expires_at):
                    everywhere = False
            if not everywhere:
                return 0
        with contextlib.suppress(Conflict):  # marked again meanwhile: the newer mark ships next pass
            await store._on(source, source.store._delete(entry.key, entry.version))
        return 1

    async def _apply(
        self, other: int, key: str, value: dict[str, Any], data: bytes, clock: str, expires_at: datetime | None
    ) -> bool:
        from .replicated_kv import record_lag

        member = self.store.members[other]
        if not member.breaker.allows():
            return False
        try:
            await self.store.apply(other, key, value, data, clock, expires_at)
        except ProviderError as exc:
            if not counts_as_down(exc):
                raise
            return False
        self.lags.append(record_lag(self.store, other, clock))
        return True

    # -- in the background -------------------------------------------------------------------

    def _in_background(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def wake(self) -> None:
        """Ship soon: start the background loop on first use, else wake it."""
        if self._stopped:
            return
        with self._lock:
            if self._future is None:
                self._future = bridge.submit(self._run())
                return
        loop, event = self._loop, self._event
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)

    async def _run(self) -> None:
        """Ship what is written here as it comes; scan the logs every ``idle`` seconds (for
        writes of other processes and those a member down made wait)."""
        self._loop, self._event = asyncio.get_running_loop(), asyncio.Event()
        scanned = 0.0
        while not self._stopped:
            self._event.clear()
            scan = time.monotonic() - scanned >= self.idle
            try:
                shipped = await self.run_once(scan=scan)
            except Exception as exc:  # a bug or a refusal: keep shipping the rest later
                log.warning("replication of %s failed: %s", self.store.name, exc)
                shipped = 0
            if scan:
                scanned = time.monotonic()
            if shipped or self._direct:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), self.idle)

    def stop(self, wait: float = 10.0) -> None:
        """Stop the background loop and wait (at most ``wait`` s) for its pass to end, so the
        members can be closed under it: a connection closed while a worker thread uses it
        is not safe for every driver."""
        self._stopped = True
        future, self._future = self._future, None
        if future is None:
            return
        loop, event = self._loop, self._event
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)
        with contextlib.suppress(Exception):
            future.result(timeout=wait)

    def __repr__(self) -> str:
        return f"<Replicator of {self.store.name!r}: {self.shipped} shipped>"

    def __getstate__(self) -> Any:
        raise TypeError("a Replicator belongs to one process")
