"""Anti-entropy for a replicated KV store: read every member, find what drifted, repair it.

Each member is read whole (documents, tombstones, not the change log), every key's
highest clock is the truth, and a member that lacks it or holds an older clock gets it
through the same only-if-newer write the replicator uses, so a repair running beside
live writes never overwrites a newer one. For what a change log cannot cover: a write
whose log entry was lost, a member restored from a backup, drift from a bug.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..resources.kv import Item
from ..resources.records import field, record
from ._envelope import LOG_PREFIX, Stored

if TYPE_CHECKING:
    from .replicated_kv import ReplicatedKeyValueStore

__all__ = ["RepairReport", "repair"]

_PAGE = 500


@record
class RepairReport:
    """What a repair read and changed, per member (by role)."""

    read: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)
    keys: int = 0
    dry_run: bool = False

    @property
    def drifted(self) -> int:
        return sum(self.repaired.values())


async def _read_all(store: ReplicatedKeyValueStore, index: int) -> dict[str, Item]:
    member, cursor = store.members[index], None
    found: dict[str, Item] = {}
    while True:
        page = await store._on(member, member.store._scan_page("", _PAGE, cursor))
        found.update((item.key, item) for item in page.items if not item.key.startswith(LOG_PREFIX))
        if page.cursor is None:
            return found
        cursor = page.cursor


async def repair(store: ReplicatedKeyValueStore, *, dry_run: bool = False) -> RepairReport:
    """Bring every member to each key's highest clock; with ``dry_run``, only count what drifted.

    Every member must answer: a repair that skipped one would call it healthy.
    """
    report = RepairReport(dry_run=dry_run)
    contents = [await _read_all(store, i) for i in range(len(store.members))]
    for member, found in zip(store.members, contents, strict=True):
        report.read[member.role] = len(found)
        report.repaired[member.role] = 0
    keys = set().union(*contents)
    report.keys = len(keys)
    for key in sorted(keys):
        winner = max((c[key] for c in contents if key in c), key=lambda item: Stored(item).clock)
        clock = Stored(winner).clock
        data: Any = None
        for index, found in enumerate(contents):
            held = found.get(key)
            if held is not None and Stored(held).clock >= clock:
                continue
            report.repaired[store.members[index].role] += 1
            if dry_run:
                continue
            store._known.pop((index, key), None)  # what this process saw there may be what drifted
            data = data or json.dumps(winner.value, separators=(",", ":"), ensure_ascii=False).encode()
            await store.apply(index, key, winner.value, data, clock, winner.expires_at)
    return report
