"""Ships a replicated store's change log: for each dirty key, the source's current state.

State, not operations: the replicator reads the key's state where it was logged (or
takes it from memory for a write this process made) and applies it by clock to every
other member, so shipping is idempotent and needs no order. A log entry is removed
(conditionally on its version, so a newer mark stays) only once every other member
holds the state or something newer; while a member is down its entries wait. In-process
it runs on the portal loop, woken by each write, and scans the logs every ``idle``
seconds. It serves any replicated kind through :class:`Replicated`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any, Protocol

from ..errors import ProviderError
from ..resources import bridge
from ..resources.records import record
from ._envelope import LOG_PREFIX
from .breaker import counts_as_down
from .staleness import Staleness

__all__ = ["Replicated", "Replicator", "State"]

log = logging.getLogger("overcast.resilience")
#: writes kept in memory for shipping; past it they ship from the log on the next scan
_DIRECT_MAX = 10_000


class State(Protocol):
    """What a member holds for one key, as a replicated store ships it."""

    @property
    def clock(self) -> str: ...


class Replicated(Protocol):
    """What the replicator needs of a replicated store, whatever its kind."""

    name: str
    members: list[Any]
    spec: Any

    async def log_page(self, index: int, cursor: str | None) -> tuple[list[tuple[str, str]], str | None]:
        """One page of member ``index``'s log: (key, entry version) pairs and the next cursor."""

    async def read_state(self, index: int, key: str) -> State | None:
        """The state member ``index`` holds for ``key`` now (None: nothing, e.g. expired)."""

    async def apply_state(self, index: int, key: str, state: Any) -> bool:
        """Apply ``state`` to member ``index`` only if newer; whether a live value was there."""

    async def drop_log(self, index: int, key: str, entry_version: str) -> None:
        """Remove ``key``'s log entry beside member ``index`` if it is still ``entry_version``."""

    def lag_recorded(self, index: int, clock: str) -> float:
        """Record that member ``index`` applied ``clock`` now; the lag in seconds."""


@record(frozen=True, slots=True)
class _Written:
    index: int
    key: str
    state: Any
    entry_version: str


class Replicator:
    """The change-log shipper of one replicated store."""

    def __init__(self, store: Replicated, *, idle: float = 1.0) -> None:
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
        #: (member, key) -> the last write queued for it: an earlier one still queued is superseded
        self._latest: dict[tuple[int, str], _Written] = {}
        #: each member's mark of when it was last reachable; stale members are resynced
        self.staleness = Staleness(store)

    def written(self, index: int, key: str, state: Any, entry_version: str) -> None:
        """A write this process just logged beside member ``index``: ship it from memory, without
        reading the log or the source (the log still has it if this process dies first)."""
        if len(self._direct) < _DIRECT_MAX:
            w = _Written(index, key, state, entry_version)
            self._latest[(index, key)] = w  # before it is queued: the shipper never skips the last one
            self._direct.append(w)
        self.wake()

    async def run_once(self, *, scan: bool = True) -> int:
        """Ship the writes made here, then (with ``scan``, or if one of them could not be
        shipped) every reachable member's log; the number of keys shipped."""
        shipped, complete = await self._ship_written()
        if scan or not complete:
            shipped += await self._ship_logs()
        self.shipped += shipped
        return shipped

    @property
    def unshipped(self) -> int:
        """Writes of this process waiting in memory to be shipped."""
        return len(self._direct)

    async def log_depth(self, index: int) -> int:
        """How many log entries wait beside member ``index``."""
        depth, cursor = 0, None
        while True:
            entries, cursor = await self.store.log_page(index, cursor)
            depth += sum(not key.startswith(LOG_PREFIX) for key, _ in entries)
            if cursor is None:
                return depth

    async def pending(self) -> int:
        """How many log entries wait beside all the members (for doctor and tests)."""
        return sum([await self.log_depth(index) for index in range(len(self.store.members))])

    async def _ship_written(self) -> tuple[int, bool]:
        shipped, complete = 0, True
        while self._direct:
            if self._stopped and self._in_background():
                return shipped, False
            w = self._direct.popleft()
            latest = self._latest.get((w.index, w.key))
            if latest is not w and latest is not None:
                # a later write of the key beside the same member is queued: it ships a newer
                # state and drops the entry that replaced this one's (state, not operations)
                shipped += 1
                continue
            self._latest.pop((w.index, w.key), None)
            if await self._ship(w.index, w.key, w.state, w.entry_version):
                shipped += 1
            else:
                complete = False  # the log entry stays: a scan ships it when the member answers
        return shipped, complete

    async def _ship_logs(self) -> int:
        shipped = 0
        for index, member in enumerate(self.store.members):
            if not member.breaker.allows():
                continue
            try:
                await self.staleness.confirm(index)
                shipped += await self._ship_log(index)
            except ProviderError as exc:
                if not counts_as_down(exc):
                    raise
                log.debug("replication from %s waits: %s", member, exc)
        return shipped

    async def _ship_log(self, index: int) -> int:
        cursor, shipped = None, 0
        while True:
            entries, cursor = await self.store.log_page(index, cursor)
            for key, entry_version in entries:
                if key.startswith(LOG_PREFIX):  # the member's own mark (see .staleness), not a key
                    continue
                if self._stopped and self._in_background():
                    return shipped
                state = await self.store.read_state(index, key)
                shipped += await self._ship(index, key, state, entry_version)
            if cursor is None:
                return shipped

    async def _ship(self, index: int, key: str, state: State | None, entry_version: str) -> bool:
        """Apply ``state`` to every other member; drop the log entry once all hold it."""
        if state is not None:
            others = [i for i in range(len(self.store.members)) if i != index]
            if not all([await self._apply(i, key, state) for i in others]):
                return False
        try:
            await self.store.drop_log(index, key, entry_version)
        except ProviderError as exc:
            if not counts_as_down(exc):
                raise
            return False
        return True

    async def _apply(self, other: int, key: str, state: State) -> bool:
        if not self.store.members[other].breaker.allows():
            return False
        try:
            await self.store.apply_state(other, key, state)
        except ProviderError as exc:
            if not counts_as_down(exc):
                raise
            return False
        self.lags.append(self.store.lag_recorded(other, state.clock))
        return True

    # -- in the background -------------------------------------------------------------------

    def _in_background(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    @property
    def started(self) -> bool:
        return self._future is not None or self._stopped

    def start(self) -> None:
        """Start the background loop if it is not running (it scans the logs at once)."""
        with self._lock:
            if self._future is None and not self._stopped:
                self._future = _submit(self._run())

    def wake(self) -> None:
        """Ship soon: start the background loop on first use, else wake it."""
        if self._stopped:
            return
        with self._lock:
            if self._future is None:
                self._future = _submit(self._run())
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


def _submit(run: Any) -> Future[None]:
    """``run`` on the portal loop in a context of its own: not the context of the call that
    started it (inside a timed call, or a request), so its own member calls are timed apart."""
    return contextvars.Context().run(bridge.submit, run)
