"""Stale members: a member away longer than the tombstone horizon is resynced whole.

While a member is down, deletes made elsewhere are tombstones there, and a tombstone lives
for the horizon (then it expires or is swept). A member back after longer still holds
what was deleted, with nothing left to say it was: shipping the log cannot remove it, and
a repair would copy it back. So each member carries a mark, kept beside its change log,
of when a replicator last found it reachable; the replicator reads it before shipping to
the member, and a mark older than the horizon (or marked stale by another process) makes
the member stale: it is resynced whole (:func:`.repair.repair` with ``resync``: what only
it holds from before it went away is removed, everything else brought to the highest
clock), and only then marked fresh again. ``health()`` shows a member stale meanwhile.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ._envelope import LOG_PREFIX
from .repair import kind_of, repair

__all__ = ["MARK", "Staleness"]

log = logging.getLogger("overcast.resilience")

#: the mark's key in each member: under the log's prefix twice, so no user key's log entry
#: can be it (user keys never start with the log's prefix)
MARK = LOG_PREFIX + LOG_PREFIX + "sync"
#: the longest a reachable member's mark goes without being refreshed
_REFRESH_MAX = 60.0


class Staleness:
    """The marks of one replicated store's members, as its replicator keeps them."""

    def __init__(self, store: Any) -> None:
        self.store = store
        #: indexes of the members found stale and not yet resynced
        self.stale: set[int] = set()
        #: resyncs done, for health and tests
        self.resynced = 0
        self._confirmed: dict[int, float] = {}
        self._busy: set[int] = set()

    @property
    def refresh(self) -> float:
        return min(_REFRESH_MAX, float(self.store.spec.horizon) / 8)

    async def confirm(self, index: int) -> None:
        """Member ``index`` answers: resync it first if it was away past the horizon, then
        refresh its mark (at most every ``refresh`` seconds)."""
        last = self._confirmed.get(index)
        if index in self._busy or (last is not None and time.monotonic() - last < self.refresh):
            return  # (busy: another pass of this process confirms it, on another loop)
        self._busy.add(index)
        try:
            await self._confirm(index)
        finally:
            self._busy.discard(index)

    async def _confirm(self, index: int) -> None:
        side = kind_of(self.store)
        mark = await side.get_mark(index, MARK)
        now_ms = int(time.time() * 1000)
        seen = mark.get("seen") if mark is not None else None
        horizon_ms = float(self.store.spec.horizon) * 1000
        if mark is not None and (mark.get("stale") or not isinstance(seen, int) or now_ms - seen > horizon_ms):
            await self._resync(index, side, seen if isinstance(seen, int) else 0, bool(mark.get("stale")))
        await side.put_mark(index, MARK, {"seen": now_ms, "stale": False})
        self._confirmed[index] = time.monotonic()

    async def _resync(self, index: int, side: Any, seen: int, marked: bool) -> None:
        member = self.store.members[index]
        self.stale.add(index)
        if not marked:  # so that every other process treats it as stale too until it is resynced
            await side.put_mark(index, MARK, {"seen": seen, "stale": True})
        log.warning(
            "%s: %s was away longer than the tombstone horizon (%gs): resyncing it whole",
            self.store.name,
            member,
            self.store.spec.horizon,
        )
        report = await repair(self.store, resync=index, resync_before=seen)
        self.resynced += 1
        self.stale.discard(index)
        log.warning(
            "%s: %s resynced: %d brought up to date, %d deleted elsewhere removed",
            self.store.name,
            member,
            report.repaired[member.role],
            report.removed[member.role],
        )
