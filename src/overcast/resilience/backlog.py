"""A durable backlog of work parked while a dependency is down, and its replay.

A backlog is an ordinary queue of the app's provider family (``<subscription>-deferred``
beside the subscription it serves): each item is one JSON envelope holding the work as it
first arrived (the CloudEvent of a delivery, or the arguments of a deferrable call), when
it was parked and why. Nothing here knows what the work is: the runtime hands
:class:`Replayer` a coroutine that runs one envelope.

Replay is one item at a time (taken up to ten at once and held in order), oldest first, at
most ``rate`` items a second, and only
while the breaker of the work's dependencies lets calls through (a half-open breaker lets
one item through as its probe). An item is acknowledged only after it ran, so a process
killed in the middle of a replay loses nothing: the item comes back after its visibility
timeout. While the dependency is down again the item is kept in hand and retried when the
breaker allows, so the items behind it do not overtake it. An item that fails for another
reason is put back at the end of the backlog with a backoff and its count of failed replays
in the item itself (so the count survives the process: a restart does not reset it), and
after ``max_failures`` moved to the backlog's dead letters (``redrive`` puts it back, its
count reset). A replay whose process died (the handler killed it) counts as a failed one: the
queue's receive count, against the give-backs recorded in a ledger (:mod:`.ledger`), tells.

Two replayers of one backlog (two processes, or a scheduled replay overlapping the last one)
take turns through a :class:`Lease`, a record in a key-value store written with conditional
writes, so they do not interleave its items.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from typing import Any

from ..errors import Conflict, InvalidArgument, NotFound, NotSupported, OvercastError
from ..resources.queue import Message, Queue
from ..resources.records import record
from ..telemetry import count
from .breaker import CLOSED, OPEN, Breaker, counts_as_down
from .ledger import NONE, Died, Ledger

__all__ = ["BACKLOG_SUFFIX", "Backlog", "BacklogStats", "Lease", "Replayer", "backlog_of", "envelope"]

log = logging.getLogger("overcast.backlog")

#: a backlog queue is the name of what it serves with this suffix
BACKLOG_SUFFIX = "-deferred"
#: deliveries a backlog queue allows before its provider would dead-letter by itself: never in
#: practice, since the replayer counts failures itself (those during an outage do not count)
QUEUE_MAX_ATTEMPTS = 1000
ENVELOPE_VERSION = 1

_sequence = itertools.count(1)
#: the backlogs this process opened, by the id of their queue (the health endpoint's view)
_live: weakref.WeakValueDictionary[int, Backlog] = weakref.WeakValueDictionary()


def backlog_of(queue: Any) -> Backlog | None:
    """The backlog this process keeps in ``queue`` (a backlog's queue handle), if it opened one."""
    return _live.get(id(queue))


def envelope(kind: str, target: str, work: dict[str, Any], reason: BaseException | None) -> dict[str, Any]:
    """The JSON body parked for one piece of work: ``kind`` (``event`` or ``call``), the
    ``target`` it is for, the ``work`` itself, and when (wall clock, and an order within
    the process) and why it was parked."""
    return {
        "v": ENVELOPE_VERSION,
        "kind": kind,
        "target": target,
        "work": work,
        "parked_at": time.time(),
        "seq": next(_sequence),
        "reason": "breaker open" if reason is None else f"{type(reason).__name__}: {reason}"[:500],
    }


@record
class BacklogStats:
    """What one process did with a backlog since it started (``overcast backlog`` shows the
    depths; these are the counts of a running replayer)."""

    parked: int = 0
    replayed: int = 0
    replay_failures: int = 0
    dead_lettered: int = 0


class Backlog:
    """The queue holding one target's parked work, created on first use.

    ``ledger``: a key-value store (the app's lease store) where the receives that did not die
    are recorded (see :mod:`overcast.resilience.ledger`); without one, a replay whose process
    died is not counted."""

    def __init__(self, queue: Queue, target: str, *, ledger: Any = None) -> None:
        self.queue = queue
        self.target = target
        self.ledger = None if ledger is None else Ledger(ledger, queue.name)
        self.stats = BacklogStats()
        #: when the oldest item this process knows of was parked (the head its replayer last
        #: received, else its first park since it found the backlog empty); None: none known
        self.oldest_parked_at: float | None = None
        self._created = False
        _live[id(queue)] = self
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    async def park(self, kind: str, work: dict[str, Any], reason: BaseException | None) -> str:
        """Append one piece of work (see :func:`envelope`); the id of the backlog item.

        Parks of one process go one at a time, so the backlog holds them in the order of
        their ``seq``. Raises what the queue raises."""
        async with self._lock():
            body = envelope(kind, self.target, work, reason)
            try:
                item = await self.queue.send(body)
            except NotFound:
                if self._created:
                    raise
                await self.queue.create()  # a backlog nobody provisioned yet (dev, tests): idempotent
                self._created = True
                item = await self.queue.send(body)
        if self.oldest_parked_at is None:
            self.oldest_parked_at = body["parked_at"]
        self.stats.parked += 1
        count("deferred.parked", backlog=self.target)
        return item

    def _lock(self) -> asyncio.Lock:
        """This event loop's lock (a Lambda may run each invocation on a loop of its own)."""
        loop = asyncio.get_running_loop()
        found = self._locks.get(loop)
        if found is None:
            found = self._locks[loop] = asyncio.Lock()
        return found

    async def dead_letter(self, message: Message, body: Any = None) -> None:
        """Move an item that keeps failing to the backlog's dead letters (send ``body``, by
        default the item's own, then ack)."""
        body = message.body if body is None else body
        await self.queue.dead_letters().send(body, attributes=message.attributes or None)
        await self.queue.ack(message)
        self.stats.dead_lettered += 1
        count("deferred.dead_letters", backlog=self.target)

    async def retry_later(self, message: Message, body: dict[str, Any], delay: float) -> None:
        """Put an item back at the end of the backlog as ``body`` (its failure count updated),
        visible after ``delay`` seconds where the queue can delay: send the copy, then ack."""
        try:
            await self.queue.send(body, delay=delay, attributes=message.attributes or None)
        except (NotSupported, InvalidArgument):  # no delay on this queue (or not that long)
            await self.queue.send(body, attributes=message.attributes or None)
        await self.queue.ack(message)

    async def give_back(
        self, messages: list[Message], started: AbstractSet[str] = frozenset(), *, behind: bool = False
    ) -> None:
        """Give items back untouched (nack), recorded first in the ledger as given back, so their
        receives are not taken for replays that died (``started``, ``behind``: see
        :meth:`Ledger.returned`)."""
        if not messages:
            return
        if self.ledger is not None:
            await self.ledger.returned(messages, started, behind=behind)
        for message in messages:
            with contextlib.suppress(OvercastError):  # gone already: it comes back anyway
                await self.queue.nack(message)

    async def redrive(self, *, limit: int | None = None) -> int:
        """Put dead letters back at the end of the backlog; how many moved."""
        dead = self.queue.dead_letters()
        moved = 0
        while limit is None or moved < limit:
            got = await dead.receive(max_messages=1, visibility_timeout=60)
            if not got:
                return moved
            body = dict(got[0].body) if isinstance(got[0].body, dict) else got[0].body
            if isinstance(body, dict):
                body.pop("failures", None)  # a fresh start: max_failures replays again
            await self.queue.send(body, attributes=got[0].attributes or None)
            await dead.ack(got[0])
            moved += 1
        return moved

    async def peek(self, limit: int = 10, *, dead: bool = False) -> list[Message]:
        """Up to ``limit`` items, oldest first: by the queue's own peek where it has one (no
        delivery counted), else received and given back at once, each recorded in the ledger
        as given back (so the read is not taken for a replay that died)."""
        queue = self.queue.dead_letters() if dead else self.queue
        if "peek" in queue.capabilities and limit <= queue.limits.max_peek:
            with contextlib.suppress(NotSupported):
                return await queue.peek(limit)
        found: list[Message] = []
        while len(found) < limit:
            got = await queue.receive(max_messages=min(10, limit - len(found)), visibility_timeout=30)
            if not got:
                break
            found += got
        if dead:
            for message in found:
                await queue.nack(message)
        else:
            await self.give_back(found)
        return found

    async def purge(self, *, dead: bool = False) -> int:
        """Delete every item (of the dead letters with ``dead``); how many."""
        queue = self.queue.dead_letters() if dead else self.queue
        removed = 0
        while got := await queue.receive(max_messages=10, visibility_timeout=30):
            for message in got:
                await queue.ack(message)
            removed += len(got)
        return removed

    async def status(self) -> dict[str, Any]:
        """Items waiting, dead letters and the oldest item's age in seconds (by reading it: as
        ``overcast backlog list`` and ``overcast doctor`` show them)."""
        waiting, dead = await self.depth(), await self.depth(dead=True)
        oldest = await self.peek(1) if waiting != 0 else []
        stamp = oldest[0].body.get("parked_at") if oldest and isinstance(oldest[0].body, dict) else None
        age = max(0.0, time.time() - float(stamp)) if isinstance(stamp, (int, float)) else None
        return {"depth": waiting, "dead_letters": dead, "oldest_age_s": age}

    async def depth(self, *, dead: bool = False) -> int | None:
        """Items waiting (of the dead letters with ``dead``); None where the provider cannot count."""
        queue = self.queue.dead_letters() if dead else self.queue
        try:
            return await queue.depth()
        except NotSupported:
            return None


class Lease:
    """Who replays one backlog now: the record ``key`` of a key-value store holding the holder
    and until when (wall clock), taken when absent or expired and renewed with conditional
    writes (``if_absent``, ``if_version``), so at most one holder at a time wins. A holder that
    dies frees it ``ttl`` seconds later, when the items it held come back too."""

    def __init__(self, store: Any, key: str, *, ttl: float, holder: str | None = None) -> None:
        self.store = store
        self.key = key
        self.ttl = ttl
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._version: str | None = None
        self._until = 0.0  # monotonic: when this holder's hold ends
        self._created = False

    async def hold(self) -> bool:
        """Take or renew the lease (a write at most every third of ``ttl``); whether it is ours."""
        now = time.monotonic()
        if self._version is not None and self._until - now > self.ttl * 2 / 3:
            return True
        value = {"holder": self.holder, "until": time.time() + self.ttl}
        try:
            self._version = await self._write(value)
        except Conflict:
            self._version = None  # another holder took it (ours had expired) or was quicker
        except NotFound:
            if self._created:
                raise
            await self.store.create()  # a store nobody provisioned yet (dev, tests): idempotent
            self._created = True
            return await self.hold()
        if self._version is None:
            return False
        self._until = now + self.ttl
        return True

    async def _write(self, value: dict[str, Any]) -> str | None:
        if self._version is not None:
            return str(await self.store.put(self.key, value, if_version=self._version))
        item = await self.store.get(self.key)
        if item is None:
            return str(await self.store.put(self.key, value, if_absent=True))
        held = item.value
        if held.get("holder") != self.holder and float(held.get("until", 0)) > time.time():
            return None
        return str(await self.store.put(self.key, value, if_version=item.version))

    async def release(self) -> None:
        """Let the next replayer in at once (best effort: the lease expires anyway)."""
        version, self._version = self._version, None
        if version is not None:
            with contextlib.suppress(OvercastError):
                await self.store.delete(self.key, if_version=version)


Run = Callable[[dict[str, Any], int], Awaitable[None]]
Probe = Callable[[], Awaitable[None]]


class Replayer:
    """Replays one backlog through ``run(body, replay_number)`` as described in the module.

    Args:
        breaker: the breaker of the work's dependencies; live deliveries feed it too.
        rate: items a second at most.
        max_failures: failures (other than the dependency being down) before an item goes
            to the dead letters.
        probe: called when the breaker is half-open, before an item is risked (a ``ping()``
            of the dependencies); without one the first item is the probe.
        state: the state of the breakers the work depends on, combined (default: ``breaker``'s).
        visibility: seconds an item in hand stays hidden from other replayers.
        lease: taken before items are received and renewed between them; without one,
            replayers of the same backlog may interleave its items.
    """

    def __init__(
        self,
        backlog: Backlog,
        run: Run,
        *,
        breaker: Breaker,
        rate: float = 20.0,
        max_failures: int = 5,
        probe: Probe | None = None,
        state: Callable[[], str] | None = None,
        visibility: float = 300.0,
        wait: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        lease: Lease | None = None,
    ) -> None:
        if rate <= 0 or max_failures < 1:
            raise ValueError("rate must be positive and max_failures at least 1")
        self.backlog = backlog
        self.run = run
        self.breaker = breaker
        self.interval = 1.0 / rate
        #: items taken at once (held in order; fewer when the rate is low, so few wait in hand)
        self.batch = max(1, min(10, int(rate)))
        self.max_failures = max_failures
        self.probe = probe
        self.state = state or (lambda: breaker.state)
        self.visibility = visibility
        self.wait = wait
        self.sleep = sleep
        self._next_at = 0.0
        self._deadline: float | None = None
        self.lease = lease
        self._leased = True
        self._moved: set[str] = set()
        #: when the last item put back after a failure becomes visible again (drain waits for it)
        self._retry_due = 0.0
        #: replays that died, by item, already counted by this process
        self._died_seen: dict[str, int] = {}
        #: the suspects in hand whose start the ledger holds (given back: that start finished)
        self._started: set[str] = set()

    async def forever(self) -> None:
        """Replay whenever there is work and the dependency answers, until cancelled."""
        try:
            while True:
                try:
                    if not await self.step() and (self.state() != CLOSED or not self._leased):
                        await self.sleep(min(self.breaker.cooldown, 0.5))
                except OvercastError as exc:  # the backlog's own queue is unreachable: try again later
                    log.warning("%s: backlog unavailable: %s", self.backlog.target, exc)
                    await self.sleep(max(self.breaker.cooldown, 1.0))
        finally:
            if self.lease is not None:
                await asyncio.shield(self.lease.release())

    async def drain(self, *, timeout: float = 30.0) -> BacklogStats:
        """Replay until the backlog is empty (or ``timeout`` seconds pass: items in hand then are
        given back, so a bounded replay ends near its budget); the stats."""
        deadline = self._deadline = time.monotonic() + timeout
        idle = 0
        try:
            while time.monotonic() < deadline and (idle < 2 or time.monotonic() < self._retry_due):
                handled = await self.step()
                idle = 0 if handled else idle + 1
                if not handled and (self.state() == OPEN or time.monotonic() < self._retry_due):
                    idle = 0
                    await self.sleep(min(self.breaker.cooldown, 0.2, max(0.0, deadline - time.monotonic())))
        finally:
            self._deadline = None
            if self.lease is not None:
                await self.lease.release()
        return self.backlog.stats

    def _expired(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    async def step(self) -> bool:
        """Replay the oldest item if the dependency answers; whether one was settled."""
        if not await self._healthy() or not await self._hold():
            return False
        queue = self.backlog.queue
        got = await queue.receive(max_messages=self.batch, visibility_timeout=self.visibility, wait=self.wait)
        received = time.monotonic()
        head = got[0].body if got else None
        self.backlog.oldest_parked_at = head.get("parked_at") if isinstance(head, dict) else None
        pending = list(got)
        try:
            while pending:
                await self._pace()
                if self._expired() or not await self._hold():
                    break  # out of time, or the lease lost: they come again, in order
                died = NONE if pending[0].attempts <= 1 else await self._died(pending)  # (the healthy path: free)
                if not await self._settle(pending[0], received, died):
                    break  # held too long: they come again, in order
                pending.pop(0)
        finally:  # also when stopped: the next holder of the lease gets them at once, first
            # (those put back with their count, or dead-lettered, just before the stop are gone)
            back = [later for later in pending if later.id not in self._moved]
            started, self._started = self._started, set()
            self._moved.clear()
            await asyncio.shield(self.backlog.give_back(back, started))
        return bool(got)

    async def _died(self, pending: list[Message]) -> Died:
        """What the ledger knows of the next item (nothing to ask for one received the first
        time); a suspect (one with a replay that died) runs alone: the items behind it are given
        back first, so they do not die with it."""
        message, ledger = pending[0], self.backlog.ledger
        if message.attempts <= 1 or ledger is None:
            return NONE
        died = await ledger.died(message)
        if died.count and len(pending) > 1:
            behind = pending[1:]
            del pending[1:]
            await self.backlog.give_back(behind, behind=True)
        return died

    async def _hold(self) -> bool:
        """Whether this replayer holds the backlog's lease (or needs none); the store being
        unreachable counts as not holding it."""
        if self.lease is None:
            return True
        try:
            self._leased = await self.lease.hold()
        except OvercastError as exc:
            log.warning("%s: lease store unavailable: %s", self.backlog.target, exc)
            self._leased = False
        return self._leased

    async def _healthy(self) -> bool:
        """Whether the breaker lets the next item through (a half-open one: after the probe)."""
        state = self.state()
        if state == CLOSED:
            return True
        if state == OPEN or not self.breaker.allows():
            return False
        if self.probe is None:
            return True  # the next item is the probe
        try:
            await self.probe()
        except Exception as exc:
            self.breaker.failed(exc if counts_as_down(exc) else TimeoutError(str(exc)))
            return False
        self.breaker.succeeded()
        return True

    async def _pace(self) -> None:
        now = time.monotonic()
        if self._next_at > now:
            await self.sleep(self._next_at - now)
        self._next_at = max(now, self._next_at) + self.interval

    async def _settle(self, message: Message, held_since: float, died: Died = NONE) -> bool:
        """Run one item until it succeeded, failed (put back with its count, or dead-lettered)
        (True), or must be given back untouched (False: the caller nacks it). ``died``: its
        replays whose process died, which count as failed ones."""
        stats = self.backlog.stats
        body = message.body if isinstance(message.body, dict) else {}
        # failed replays so far, in any process: those recorded in the item, and those that died
        failures = int(body.get("failures", 0)) + died.count
        if died.count and await self._suspect(message, {**body, "failures": failures}, died):
            return True
        while True:
            # the breaker may have opened while the receive waited: hold the item until it lets calls through
            if not await self._await_recovery(held_since):
                return False
            try:
                await self.run(message.body, failures + 1)
            except Exception as exc:
                if counts_as_down(exc):
                    self.breaker.failed(exc)
                    continue
                await self._failed(message, {**body, "failures": failures + 1}, exc)
                await self._forget(message, died)
                return True
            self._succeeded()
            await self.backlog.queue.ack(message)
            stats.replayed += 1
            count("deferred.replayed", backlog=self.backlog.target)
            await self._forget(message, died)
            return True

    async def _suspect(self, message: Message, body: dict[str, Any], died: Died) -> bool:
        """An item whose replay's process died ``died.count`` times: those count as failed
        replays; with ``max_failures`` reached it goes to the dead letters without running
        again (True), else its start is written down before it runs (False)."""
        fresh = died.count - self._died_seen.get(message.id, 0)  # this process may have seen some already
        self._died_seen[message.id] = died.count
        if fresh > 0:
            self.backlog.stats.replay_failures += fresh
            count("deferred.replay_failures", fresh, backlog=self.backlog.target)
        failures = int(body["failures"])
        log.warning(
            "%s: replay of %s died with its process %d time(s) (%d/%d failures)",
            *(self.backlog.target, message.id, died.count, failures, self.max_failures),
        )
        ledger = self.backlog.ledger
        if failures < self.max_failures:
            if ledger is not None:
                await ledger.started(message)
                self._started.add(message.id)
            return False
        await self._finish(self.backlog.dead_letter(message, body), message)
        await self._forget(message, died)
        return True

    async def _forget(self, message: Message, died: Died) -> None:
        """The item is settled: drop its record from the ledger, if it has one."""
        self._started.discard(message.id)
        self._died_seen.pop(message.id, None)
        ledger = self.backlog.ledger
        if ledger is not None and (died.recorded or died.count):
            await ledger.forget(message)

    async def _failed(self, message: Message, body: dict[str, Any], exc: Exception) -> None:
        """A replay failed for another reason than the dependency: the item goes back to the end
        of the backlog with its count (after a backoff), or to the dead letters after ``max_failures``."""
        stats = self.backlog.stats
        failures = int(body["failures"])
        stats.replay_failures += 1
        count("deferred.replay_failures", backlog=self.backlog.target)
        log.warning(
            "%s: replay of %s failed (%d/%d): %r", self.backlog.target, message.id, failures, self.max_failures, exc
        )
        if failures >= self.max_failures:
            await self._finish(self.backlog.dead_letter(message, body), message)
            return
        delay = min(30.0, 0.1 * 2 ** (failures - 1))
        # (a second more: SQS and others count delays in whole seconds)
        self._retry_due = max(self._retry_due, time.monotonic() + delay + 1.0)
        await self._finish(self.backlog.retry_later(message, body, delay), message)

    async def _finish(self, move: Awaitable[None], message: Message) -> None:
        """Complete a move of ``message`` (copy, then ack) even if the replayer is stopped
        meanwhile, so the count it carries is never lost to a half-done move."""
        task = asyncio.ensure_future(move)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await task
            self._moved.add(message.id)
            raise

    def _succeeded(self) -> None:
        if self.breaker.failures or self.breaker.opened_at is not None:
            self.breaker.succeeded()

    async def _await_recovery(self, held_since: float) -> bool:
        """Wait, item in hand, until the breaker lets calls (or a probe) through; False once
        the item was held for most of its visibility timeout."""
        while time.monotonic() - held_since < self.visibility * 0.8 and not self._expired():
            if await self._healthy():
                return True
            await self.sleep(min(self.breaker.cooldown, 0.2))
        return False
