"""Which receives of a backlog item were replays whose process died.

A handler that kills its own process (``os._exit``, a segfault, the out-of-memory killer)
cannot count its failure, and a poison item doing that every time would be replayed forever.
The queue counts receives, though (``Message.attempts``: SQS's receive count, Azure's dequeue
count, the embedded, Redis and PostgreSQL queues' own). Every receive of an item ends in one of
three ways: it is settled (acked, put back with its count, dead-lettered: the item is gone),
given back untouched (nack), or the process dies holding it. So a ledger of the give-backs is
enough: ``attempts - 1 - given back`` earlier receives died. Nothing is written on the healthy
path (an item received the first time needs no look-up).

A process that dies holding a batch takes the items behind the one running with it: their
receives died too, though they never ran. So an item with a death on record (a *suspect*) is
replayed alone (the others in hand are given back first), with its start written down before it
runs; a death with a start on record is one of its own. Deaths without one (in a batch) count
once, however many: an innocent item pays at most one, a poison item pays every one from its
second on, and reaches the dead letters after ``max_failures`` process runs.

The ledger is a key-value store (the app's lease store), one record per item that has any:
``returned-<backlog>-<message id>`` holding ``n`` (given back) and ``s`` (starts of a suspect
not finished), kept 14 days at most and deleted when the item is settled.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from functools import partial
from typing import Any

from ..errors import Conflict, NotFound, OvercastError
from ..resources.queue import Message

__all__ = ["RETURNED_TTL", "Died", "Ledger"]

log = logging.getLogger("overcast.backlog")

#: how long a record is kept at most (the longest a queue keeps an item: SQS's 14 days)
RETURNED_TTL = 14 * 24 * 3600.0


class Died:
    """What the ledger knows of an item: ``count`` receives died (its own starts on record, plus
    one for any deaths in a batch), and whether it holds a record to forget once it is settled."""

    __slots__ = ("count", "recorded")

    def __init__(self, count: int, recorded: bool) -> None:
        self.count = count
        self.recorded = recorded


NONE = Died(0, False)


class Ledger:
    """The records of one backlog's items in ``store``; ``name`` is the backlog queue's."""

    def __init__(self, store: Any, name: str) -> None:
        self.store = store
        self.name = name
        self._ready = False

    def _key(self, message: Message) -> str:
        return f"returned-{self.name}-{message.id}"

    async def died(self, message: Message) -> Died:
        """How many earlier receives of ``message`` died (see the module); free when it is
        received the first time."""
        if message.attempts <= 1:
            return NONE
        try:
            item = await self.store.get(self._key(message))
        except NotFound:
            item = None
        value = item.value if item is not None else {}
        returned, started = int(value.get("n", 0)), int(value.get("s", 0))
        in_batch = message.attempts - 1 - returned - started
        return Died(started + min(1, max(0, in_batch)), item is not None)

    async def started(self, message: Message) -> None:
        """A suspect is about to run: should its process die, the record says it was its own death."""
        await self._update(self._key(message), partial(_counted, returned=0, started=1))

    async def returned(self, messages: list[Message], started: AbstractSet[str], *, behind: bool = False) -> None:
        """These items are given back untouched (their receives did not die); ``started``: the
        ids among them whose start was written down (that start finished). ``behind``: they were
        in hand behind a suspect, so their deaths in a batch were its (on an ordered queue the
        first unsettled item of the batch a process died with comes back first): excused."""
        try:
            for message in messages:
                own = 1 if message.id in started else 0
                if behind and message.attempts > 1:
                    await self._update(self._key(message), partial(_excused, attempts=message.attempts, own=own))
                else:
                    await self._update(self._key(message), partial(_counted, returned=1, started=-own))
        except OvercastError as exc:  # each one not recorded counts as one death in a batch, at most
            log.warning("%s: could not record items given back: %s", self.name, exc)

    async def forget(self, message: Message) -> None:
        """Drop the record of a settled item (best effort: it expires anyway)."""
        with contextlib.suppress(OvercastError):
            await self.store.delete(self._key(message))

    async def _update(self, key: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Write ``change(record)`` over the record ``key`` with conditional writes (a CLI reading
        the backlog meanwhile records its give-backs too: neither loses the other's)."""
        store = self.store
        ttl = RETURNED_TTL if "ttl" in store.capabilities else None
        for _ in range(5):
            try:
                item = await store.get(key)
            except NotFound:
                if self._ready:
                    raise
                await store.create()  # a store nobody provisioned yet (dev, tests): idempotent
                self._ready = True
                continue
            value = change(dict(item.value) if item is not None else {})
            try:
                if item is None:
                    await store.put(key, value, if_absent=True, ttl=ttl)
                else:
                    await store.put(key, value, if_version=item.version, ttl=ttl)
                return
            except Conflict:
                continue


def _counted(value: dict[str, Any], returned: int, started: int) -> dict[str, Any]:
    return {"n": int(value.get("n", 0)) + returned, "s": max(0, int(value.get("s", 0)) + started)}


def _excused(value: dict[str, Any], attempts: int, own: int) -> dict[str, Any]:
    """Given back, and every earlier receive not its own death excused: its next receive shows
    none died in a batch (``attempts - 1 - n - s`` is 0 then)."""
    started = max(0, int(value.get("s", 0)) - own)
    return {"n": max(int(value.get("n", 0)) + 1, attempts - started), "s": started}
