"""Anti-entropy for a replicated store: read every member, find what drifted, repair it.

Each member is read whole (documents or objects with their clocks and tombstones, not the
change log), every key's highest clock is the truth, and a member that lacks it or holds
an older clock gets it through the same only-if-newer write the replicator uses, so a
repair running beside live writes never overwrites a newer one. For what a change log
cannot cover: a write whose log entry was lost, a member restored from a backup, drift
from a bug. The same pass sweeps tombstones older than the horizon that every member
agrees on, and resyncs whole a member marked stale (:mod:`.staleness`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, NotFound
from ..resources.records import field, record
from ._envelope import LOG_PREFIX, Stored
from .clock import wall_ms

if TYPE_CHECKING:
    from ._replication import Replication

__all__ = ["Held", "RepairReport", "kind_of", "repair"]

_PAGE = 500
_HEADS = 16

#: what one member holds for one key: (clock, live, native version)
Held = tuple[str, bool, "str | None"]


@record
class RepairReport:
    """What a repair read and changed, per member (by role)."""

    read: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)
    #: tombstones older than the horizon removed (every member agreed on them)
    swept: dict[str, int] = field(default_factory=dict)
    #: items a stale member held that the others had deleted long ago, removed from it
    removed: dict[str, int] = field(default_factory=dict)
    keys: int = 0
    dry_run: bool = False

    @property
    def drifted(self) -> int:
        return sum(self.repaired.values()) + sum(self.removed.values())


class _KVSide:
    """The repair's view of a replicated KV store's members."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def held(self, index: int) -> dict[str, Held]:
        member, cursor = self.store.members[index], None
        found: dict[str, Held] = {}
        while True:
            page = await self.store._on(member, member.store._scan_page("", _PAGE, cursor))
            for item in page.items:
                if not item.key.startswith(LOG_PREFIX):
                    stored = Stored(item)
                    found[item.key] = (stored.clock, stored.value is not None, stored.native)
            if page.cursor is None:
                return found
            cursor = page.cursor

    async def remove(self, index: int, key: str, native: str | None) -> None:
        member = self.store.members[index]
        self.store._known.pop((index, key), None)
        with contextlib.suppress(Conflict):  # it moved: a newer write is no longer ours to remove
            await self.store._on(member, member.store._delete(key, native))

    async def get_mark(self, index: int, key: str) -> dict[str, Any] | None:
        member = self.store.members[index]
        item = await self.store._on(member, member.store._get(key))
        return None if item is None else dict(item.value)

    async def put_mark(self, index: int, key: str, mark: dict[str, Any]) -> None:
        member = self.store.members[index]
        await self.store._on(member, member.store._put(key, mark, json.dumps(mark).encode(), None, False, None))


class _BlobSide:
    """The repair's view of a replicated bucket's members (a listing, then a HEAD per object
    for its clock: listings carry no metadata)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def held(self, index: int) -> dict[str, Held]:
        from .replicated_blob import _clock, _live

        member, cursor, keys = self.store.members[index], None, []
        while True:
            page = await self.store._on(member, member.store._list_page("", _PAGE, cursor))
            keys += [info.key for info in page.objects if not info.key.startswith(LOG_PREFIX)]
            if page.cursor is None:
                break
            cursor = page.cursor
        gate = asyncio.Semaphore(_HEADS)
        found: dict[str, Held] = {}

        async def head(key: str) -> None:
            async with gate:
                info = await self.store._on(member, member.store._head(key))
            if info is not None:
                found[key] = (_clock(info), _live(info), info.etag)

        await asyncio.gather(*(head(key) for key in keys))
        return found

    async def remove(self, index: int, key: str, native: str | None) -> None:
        """Delete if the object is still the one read (buckets have no conditional delete:
        a write landing between the HEAD and the delete is lost to this member only, and
        the replicator or the next repair brings it back from the member that took it)."""
        member = self.store.members[index]
        self.store._known.pop((index, key), None)
        info = await self.store._on(member, member.store._head(key))
        if info is not None and info.etag == native:
            with contextlib.suppress(NotFound):
                await self.store._on(member, member.store._delete(key))

    async def get_mark(self, index: int, key: str) -> dict[str, Any] | None:
        member = self.store.members[index]
        try:
            data = await self.store._on(member, member.store._get(key, None, None))
        except NotFound:
            return None
        try:
            mark = json.loads(data)
        except ValueError:
            return None
        return mark if isinstance(mark, dict) else None

    async def put_mark(self, index: int, key: str, mark: dict[str, Any]) -> None:
        member = self.store.members[index]
        put = member.store._put(key, json.dumps(mark).encode(), "application/json", {}, False, None)
        await self.store._on(member, put)


def kind_of(store: Replication) -> _KVSide | _BlobSide:
    """The repair's view of ``store``'s members, by its kind."""
    from .replicated_blob import ReplicatedBlobStore

    return _BlobSide(store) if isinstance(store, ReplicatedBlobStore) else _KVSide(store)


async def repair(
    store: Replication, *, dry_run: bool = False, resync: int | None = None, resync_before: int = 0
) -> RepairReport:
    """Bring every member to each key's highest clock; with ``dry_run``, only count what drifted.

    Every member must answer: a repair that skipped one would call it healthy. Tombstones
    older than the store's horizon that every member holds alike (or lacks) are swept.
    With ``resync`` (a member index marked stale), what only that member holds, written
    before ``resync_before`` (wall milliseconds), was deleted elsewhere while it was away
    and its tombstones are gone: it is removed there rather than copied back.
    """
    side = kind_of(store)
    report = RepairReport(dry_run=dry_run)
    contents = [await side.held(i) for i in range(len(store.members))]
    for member, found in zip(store.members, contents, strict=True):
        for tally in (report.read, report.repaired, report.swept, report.removed):
            tally[member.role] = 0
        report.read[member.role] = len(found)
    keys = set().union(*contents)
    report.keys = len(keys)
    horizon_ms = int((time.time() - store.spec.horizon) * 1000)
    for key in sorted(keys):
        held = {i: found[key] for i, found in enumerate(contents) if key in found}
        if resync is not None and list(held) == [resync] and wall_ms(held[resync][0]) < resync_before:
            await _remove(store, side, report, [resync], key, held)
            continue
        clock = max(h[0] for h in held.values())
        agreed = all(h[0] == clock and not h[1] for h in held.values())  # one tombstone, wherever held
        if agreed and wall_ms(clock) < horizon_ms:
            await _remove(store, side, report, list(held), key, held, swept=True)
            continue
        await _bring_up(store, report, contents, key, held, clock)
    return report


async def _remove(
    store: Any, side: Any, report: RepairReport, where: list[int], key: str, held: dict[int, Held], swept: bool = False
) -> None:
    tally = report.swept if swept else report.removed
    for index in where:
        tally[store.members[index].role] += 1
        if not report.dry_run:
            await side.remove(index, key, held[index][2])


async def _bring_up(
    store: Any, report: RepairReport, contents: list[dict[str, Held]], key: str, held: dict[int, Held], clock: str
) -> None:
    """Apply the winner's state to each member that lacks it or holds an older clock."""
    behind = [i for i in range(len(contents)) if i not in held or held[i][0] < clock]
    if not behind:
        return
    source = next(i for i, h in held.items() if h[0] == clock)
    state = None if report.dry_run else await store.read_state(source, key)
    for index in behind:
        report.repaired[store.members[index].role] += 1
        if state is None:  # a dry run, or it changed under the repair (the replicator ships that)
            continue
        store._known.pop((index, key), None)  # what this process saw there may be what drifted
        await store.apply_state(index, key, state)
