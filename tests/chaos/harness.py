"""A chaos run over a replicated store: concurrent writers and readers while faults hit the
members, then every store checked against the record of acknowledged writes."""

from __future__ import annotations

import asyncio
import contextvars
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import overcast
from overcast.errors import OvercastError
from overcast.resilience._envelope import LOG_PREFIX, Stored

Fault = Callable[[], Awaitable[str]]  # injects one fault, heals it, and says what it did


@dataclass
class Report:
    acknowledged: int = 0
    errors: int = 0
    faults: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    disagree: list[str] = field(default_factory=list)
    converge_seconds: float = 0.0
    failover_seconds: list[float] = field(default_factory=list)

    def __str__(self) -> str:
        worst = max(self.failover_seconds, default=0.0)
        return (
            f"writes acknowledged {self.acknowledged}, client-visible errors {self.errors}, "
            f"faults injected {len(self.faults)}, lost writes {len(self.lost)}, "
            f"values never written {len(self.foreign)}, stores disagreeing {len(self.disagree)}, "
            f"time to converge {self.converge_seconds:.2f} s, "
            f"failover time (fault to the next acknowledged write) max {worst:.2f} s"
        )


@dataclass
class Record:
    acked: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    attempted: set[tuple[str, int, int]] = field(default_factory=set)
    fault_at: float | None = None  # when the last fault began, until a write is acknowledged after it


#: the clock the replicated store gave this task's last write (buckets return ETags, not clocks)
LAST_CLOCK: contextvars.ContextVar[str] = contextvars.ContextVar("last_clock")


def _record_clocks(store: Any) -> None:
    """Note each write's clock in the writing task's context (instrumentation, nothing faked)."""
    make = store.clock.now

    def now() -> str:
        value: str = make()
        LAST_CLOCK.set(value)
        return value

    store.clock.now = now


async def _put(store: Any, key: str, value: dict[str, int]) -> str:
    if store.kind == "kv":
        version: str = await store.put(key, value)
        return version
    await store.put(key, json.dumps(value).encode())
    return LAST_CLOCK.get()


async def _writer(store: Any, who: int, keys: list[str], until: float, record: Record, report: Report) -> None:
    seq = 0
    while time.monotonic() < until:
        seq += 1
        key = random.choice(keys)
        value = {"w": who, "n": seq}
        record.attempted.add((key, who, seq))
        try:
            version = await _put(store, key, value)
        except OvercastError:
            report.errors += 1
            await asyncio.sleep(0.02)
            continue
        record.acked.setdefault(key, []).append((version, value))
        if record.fault_at is not None:  # the first write acknowledged since the fault began
            report.failover_seconds.append(time.monotonic() - record.fault_at)
            record.fault_at = None
        await asyncio.sleep(0.005)


async def _reader(store: Any, keys: list[str], until: float, report: Report) -> None:
    while time.monotonic() < until:
        try:
            await (store.get if store.kind == "kv" else store.head)(random.choice(keys))
        except OvercastError:
            report.errors += 1
        await asyncio.sleep(0.01)


async def _injector(faults: list[Fault], until: float, record: Record, report: Report, every: float) -> None:
    while time.monotonic() + every < until:
        await asyncio.sleep(every * random.uniform(0.5, 1.0))
        record.fault_at = time.monotonic()
        report.faults.append(await random.choice(faults)())


async def run(
    store: Any,
    members: list[str],
    faults: list[Fault],
    *,
    seconds: float,
    writers: int = 4,
    keys: int = 25,
    every: float = 2.0,
) -> Report:
    """Write and read for ``seconds`` under ``faults``, heal, converge, and check every member."""
    report, record = Report(), Record()
    _record_clocks(store)
    names = [f"k{i}" for i in range(keys)]
    until = time.monotonic() + seconds
    await asyncio.gather(
        *(_writer(store, w, names, until, record, report) for w in range(writers)),
        _reader(store, names, until, report),
        _injector(faults, until, record, report, every),
    )
    start = time.monotonic()
    while time.monotonic() - start < 120:
        try:  # a member still catching up (a restarted server) may miss a deadline: try again
            if not await store.replicate() and not await store.replicator.pending():
                break
        except OvercastError:
            pass
        await asyncio.sleep(0.05)
    report.converge_seconds = time.monotonic() - start
    report.acknowledged = sum(len(v) for v in record.acked.values())
    contents = [_contents_kv(url) if store.kind == "kv" else _contents_bucket(url) for url in members]
    _check(contents, record, report)
    return report


def _contents_kv(url: str) -> dict[str, Any]:
    store = overcast.open_kv(url)
    found = {i.key: Stored(i) for i in store.sync.scan() if not i.key.startswith(LOG_PREFIX)}
    store.close()
    return found


def _contents_bucket(url: str) -> dict[str, Any]:
    """Each object's clock and document (None for a tombstone), read from the member itself."""
    bucket = overcast.open_bucket(url)
    found: dict[str, Any] = {}
    for info in bucket.sync.list():
        if info.key.startswith(LOG_PREFIX):
            continue
        head = bucket.sync.head(info.key)
        assert head is not None
        value = None if "ocdeleted" in head.metadata else json.loads(bucket.sync.get(info.key))
        found[info.key] = SimpleNamespace(clock=head.metadata.get("occlock", ""), value=value)
    bucket.close()
    return found


def _check(contents: list[dict[str, Any]], record: Record, report: Report) -> None:
    for key, writes in record.acked.items():
        best_clock, best_value = max(writes, key=lambda w: w[0])
        for index, found in enumerate(contents):
            stored = found.get(key)
            if stored is None or stored.clock < best_clock:
                report.lost.append(f"member {index} key {key}: has {stored and stored.clock}, acked {best_clock}")
            elif stored.clock == best_clock and stored.value != best_value:
                report.lost.append(f"member {index} key {key}: value {stored.value} at acked clock {best_clock}")
            elif stored.value is None or (key, stored.value.get("w"), stored.value.get("n")) not in record.attempted:
                report.foreign.append(f"member {index} key {key}: {stored.value}")
    for key in set().union(*contents):
        seen = {(c[key].clock, json.dumps(c[key].value, sort_keys=True)) if key in c else None for c in contents}
        if len(seen) > 1:
            report.disagree.append(f"{key}: {seen}")
