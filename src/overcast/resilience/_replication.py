"""What every replicated store shares, whatever its kind: members, breakers, deadlines,
reads that fail over, writes acknowledged by ``ack``, the change log beside each member.

A kind (:mod:`.replicated_kv`, :mod:`.replicated_blob`) adds how a state is applied to a
member only if newer (``apply_state``), how a log entry is written (``_log_entry``), and
the replicator's reads (``log_page``, ``read_state``, ``drop_log``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .. import telemetry
from ..errors import InvalidArgument, ProviderError, Unavailable
from ..resources.registry import open_resource
from ..resources.url import ResourceURL
from .breaker import Breaker, breaker_for, counts_as_down
from .clock import HybridClock, wall_ms
from .replicator import Replicator, State
from .spec import ReplicaSpec

if TYPE_CHECKING:
    from .repair import RepairReport

__all__ = ["Member", "Replication", "lag_of"]

T = TypeVar("T")
log = logging.getLogger("overcast.resilience")
_KNOWN_MAX = 10_000


class Member:
    """One store of a replicated resource, its breaker, and its observed latency."""

    __slots__ = ("breaker", "latency", "role", "store", "url")

    def __init__(self, store: Any, url: ResourceURL, role: str, breaker: Breaker) -> None:
        self.store, self.url, self.role, self.breaker = store, url, role, breaker
        self.latency = 0.0

    def __repr__(self) -> str:
        return f"{self.role} {self.url}"


class Replication:
    """Mixin of a replicated store of one kind (the kind's base class comes after it)."""

    name: str
    location: ResourceURL

    def _start(self, kind: str) -> None:
        self.spec = ReplicaSpec.from_url(self.location)
        self.members = [
            Member(telemetry.timed(open_resource(kind, u, name=self.name)), u, role, breaker_for(u))
            for u, role in zip(self.spec.members, self.spec.roles, strict=True)
        ]
        self.clock = HybridClock()
        #: (member, key) -> (native version or None when absent, clock, live) of what this
        #: process last wrote or read there
        self._known: dict[tuple[int, str], tuple[str | None, str, bool]] = {}
        self.replicator = Replicator(self)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        replicas = ", ".join(str(m.url) for m in self.members[1:])
        members = f"primary={self.members[0].url} replicas=[{replicas}] ack={self.spec.ack}"
        return f"<{type(self).__name__} {self.name!r} {members}>"

    @property
    def capabilities(self) -> frozenset[str]:
        """What every member can do; ``put_if_newer`` and ``put_with_log`` are the members' own
        (they compare their envelopes), never the replicated store's."""
        shared = frozenset.intersection(*(frozenset(m.store.capabilities) for m in self.members))
        return shared - {"put_if_newer", "put_with_log"}

    # -- one member call: deadline, breaker, latency ---------------------------------------

    async def _on(self, member: Member, call: Awaitable[T]) -> T:
        if not self.replicator.started:  # first use: ship what earlier processes logged and left
            self.replicator.start()
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.spec.timeout):
                result = await call
        except TimeoutError as exc:
            member.breaker.failed(exc)
            raise Unavailable(
                f"{self.name}: {member} did not answer within {self.spec.timeout:g}s", resource=self.name
            ) from exc
        except Exception as exc:
            member.breaker.failed(exc)
            raise
        member.breaker.succeeded()
        elapsed = time.perf_counter() - start
        member.latency = elapsed if not member.latency else 0.8 * member.latency + 0.2 * elapsed
        return result

    def _cursor(self, cursor: str) -> tuple[int, str | None]:
        """(member index, the member's own cursor) of a cursor this store returned."""
        where, _, inner = cursor.partition(":")
        if not where.isdigit() or int(where) >= len(self.members):
            raise InvalidArgument(f"{self.name}: cursor {cursor!r} is not one this store returned", resource=self.name)
        return int(where), inner or None

    def _order(self) -> list[Member]:
        if self.spec.mode == "read-nearest":
            return sorted(self.members, key=lambda m: m.latency)
        return self.members

    async def _read(self, what: str, call: Callable[[Any], Awaitable[T]]) -> tuple[int, T]:
        """``call`` on the first member that answers, in read order; (its index, the result)."""
        missed: list[str] = []
        for member in self._order():
            if not member.breaker.allows():
                missed.append(f"{member}: circuit open")
                continue
            try:
                return self.members.index(member), await self._on(member, call(member.store))
            except ProviderError as exc:
                if not counts_as_down(exc):
                    raise
                missed.append(f"{member}: {exc}")
        raise Unavailable(f"{self.name}: no member could {what} ({'; '.join(missed)})", resource=self.name)

    # -- writes ------------------------------------------------------------------------------

    async def apply_state(self, index: int, key: str, state: Any) -> bool:
        raise NotImplementedError

    def _log_entry(self, index: int, key: str, clock: str) -> Awaitable[str]:
        raise NotImplementedError

    async def _write_members(self, key: str, state: State, order: range, needed: int | None = None) -> tuple[int, bool]:
        """Apply ``state`` to members in ``order`` until ``needed`` (by ``ack``) hold it, the first at once.

        A member that is down is passed over with the same clock, so the write converges
        whichever members applied it. Returns the first member holding it, and whether a
        live value was there.
        """
        needed = needed or (1 if self.spec.ack == "primary" else 2)
        # when every member takes the write at once nothing is left to ship: no log entry,
        # unless some member missed it (then beside those that hold it, before raising)
        logged = needed < len(order)
        candidates = [i for i in order if self.members[i].breaker.allows()]
        missed = [f"{self.members[i]}: circuit open" for i in order if i not in candidates]
        held: dict[int, bool] = {}
        while candidates and len(held) < needed:
            batch, candidates = candidates[: needed - len(held)], candidates[needed - len(held) :]
            for index, outcome in zip(batch, await self._apply_batch(batch, key, state, logged), strict=True):
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, ProviderError) or not counts_as_down(outcome):
                        raise outcome
                    missed.append(f"{self.members[index]}: {outcome}")
                else:
                    held[index] = outcome
        if len(held) < needed:
            if not logged and held:
                await self._log_beside(list(held), key, state.clock)
            raise Unavailable(
                f"{self.name}: write of key {key!r} not acknowledged: {len(held)} of the {needed} members "
                f"ack={self.spec.ack!r} needs hold it ({'; '.join(missed)})",
                resource=self.name,
            )
        return next(iter(held.items()))

    async def _apply_batch(self, batch: list[int], key: str, state: State, logged: bool) -> list[Any]:
        """Each outcome (a result or the exception) of applying ``state`` to the members in
        ``batch`` at once; one member is awaited in place (no task: the common write's path)."""
        if len(batch) == 1:
            try:
                return [await self._apply_to(batch[0], key, state, logged)]
            except Exception as exc:
                return [exc]
        return await asyncio.gather(*(self._apply_to(i, key, state, logged) for i in batch), return_exceptions=True)

    async def _apply_to(self, index: int, key: str, state: State, logged: bool) -> bool:
        write = self.apply_state(index, key, state)
        return await (self._logged(index, key, state, write) if logged else write)

    async def _logged(self, index: int, key: str, state: State, write: Awaitable[T]) -> T:
        """Run ``write`` on member ``index`` and record ``key`` in the change log beside it, at
        once; then hand the write to the replicator to ship from memory."""
        entry = asyncio.ensure_future(self._log_entry(index, key, state.clock))
        try:
            result = await write
        except BaseException:
            await asyncio.wait([entry])
            if not entry.cancelled():
                entry.exception()  # retrieved: the write's own error is the one to raise
            raise
        entry_version = await entry  # the write is acknowledged only once its log entry is held too
        self.replicator.written(index, key, state, entry_version)
        return result

    async def _log_beside(self, indexes: list[int], key: str, clock: str) -> None:
        """Best effort: log ``key`` beside members that hold a write others missed."""
        outcomes = await asyncio.gather(*(self._log_entry(i, key, clock) for i in indexes), return_exceptions=True)
        self.replicator.wake()  # the log scan ships them once the member that missed answers
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                log.warning(
                    "%s: key %r is not logged for replication (%s): its next write ships it", self.name, key, outcome
                )

    def _remember(self, index: int, key: str, native: str | None, clock: str, live: bool) -> None:
        if len(self._known) >= _KNOWN_MAX:
            self._known.clear()
        self._known[(index, key)] = (native, clock, live)

    # -- life cycle --------------------------------------------------------------------------

    async def create(self) -> None:
        await asyncio.gather(*(m.store.create() for m in self.members))

    async def ping(self) -> None:
        """Raise if no member answers; a replica down is reported by ``health()``, not here."""
        await self._read("ping", lambda store: store.ping())

    async def repair(self, *, dry_run: bool = False) -> RepairReport:
        """Compare every member's keys and clocks, repair what drifted and sweep tombstones
        past the horizon (see :mod:`.repair`)."""
        from .repair import repair

        return await repair(self, dry_run=dry_run)

    async def replicate(self) -> int:
        """Ship every change logged beside any member to the others, once; return the keys shipped."""
        return await self.replicator.run_once()

    def lag_recorded(self, index: int, clock: str) -> float:
        return record_lag(self, index, clock)

    def health(self) -> list[dict[str, Any]]:
        """Each member's role, URL, breaker state and transitions, and whether it is stale (away past
        the tombstone horizon and not yet resynced), for doctor and health endpoints."""
        stale = self.replicator.staleness.stale
        return [
            {
                "role": m.role,
                "url": str(m.url),
                "breaker": m.breaker.state,
                "transitions": dict(m.breaker.transitions),
                "stale": i in stale,
            }
            for i, m in enumerate(self.members)
        ]

    def close(self) -> None:
        self.replicator.stop()
        for member in self.members:
            member.store.close()


def lag_of(clock: str) -> float:
    """Seconds from a clock's wall time to now."""
    return max(0.0, time.time() - wall_ms(clock) / 1000)


def record_lag(store: Replication, index: int, clock: str) -> float:
    """Record in ``overcast.replication.lag`` that member ``index`` applied ``clock`` now; the lag."""
    lag = lag_of(clock)
    telemetry.replication_lag(store.name, store.members[index].role, lag)
    return lag
