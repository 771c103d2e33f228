"""What the health endpoint and ``overcast doctor`` say of replicated resources.

``snapshot`` is what this process knows now and costs nothing: each member's breaker,
the replicator's recent lag and the writes it holds in memory; it is what
``GET /_overcast/health`` serves. ``inspect`` asks the members themselves (a ping each
and the depth of the change log beside it), for ``overcast doctor``. ``backlogs`` adds the
backlogs of deferred work: each one's depth (asked of its queue, at most every few seconds,
within a short timeout) and what this process saw and did with it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..errors import OvercastError
from .backlog import backlog_of
from .breaker import OPEN

__all__ = ["backlogs", "inspect", "replicated_of", "snapshot"]

#: id of a backlog's queue -> (when asked, its depth): the endpoint asks a queue at most this often
_depths: dict[int, tuple[float, int | None]] = {}
DEPTH_FRESH = 5.0


def replicated_of(store: Any) -> Any | None:
    """The replicated store behind ``store`` (an App handle, a timed wrapper), or None."""
    opened = getattr(store, "provider", store)
    return opened if hasattr(opened, "replicator") and hasattr(opened, "members") else None


def _p99(values: list[float]) -> float | None:
    return sorted(values)[int(0.99 * (len(values) - 1))] if values else None


def snapshot(resources: dict[str, Any]) -> dict[str, Any]:
    """``{"status": "ok" | "degraded" | "down", "resources": {...}}`` for the replicated ones among
    ``resources`` (name -> handle) that this process has opened. ``degraded``: a member's
    breaker is open but each resource has one that is not; ``down``: one has none."""
    found: dict[str, Any] = {}
    status = "ok"
    for name, handle in resources.items():
        if getattr(handle, "_opened", True) is None:
            continue  # not used yet in this process: nothing known, nothing opened to find out
        store = replicated_of(handle)
        if store is None:
            continue
        members = [
            {
                "role": m.role,
                "provider": m.url.scheme,
                "breaker": m.breaker.state,
                "latency_ms": round(m.latency * 1000, 2),
                "stale": i in store.replicator.staleness.stale,
            }
            for i, m in enumerate(store.members)
        ]
        lag = _p99(list(store.replicator.lags))
        found[name] = {
            "kind": store.kind,
            "ack": store.spec.ack,
            "members": members,
            "replication_lag_p99_ms": None if lag is None else round(lag * 1000, 1),
            "unshipped_in_memory": store.replicator.unshipped,
        }
        states = [m["breaker"] for m in members]
        if all(state == OPEN for state in states):
            status = "down"
        elif OPEN in states and status == "ok":
            status = "degraded"
    return {"status": status, "resources": found}


async def inspect(store: Any) -> list[dict[str, Any]]:
    """Ping each member of a replicated store, count the log entries beside it, and read its
    mark: when a replicator last reached it, and whether it is stale (see :mod:`.staleness`)."""
    from .repair import kind_of
    from .staleness import MARK

    side, now, report = kind_of(store), time.time(), []
    for index, member in enumerate(store.members):
        row: dict[str, Any] = {"role": member.role, "url": str(member.url), "breaker": member.breaker.state}
        try:
            await store._on(member, member.store.ping())
            row.update(reachable=True, log_depth=await store.replicator.log_depth(index))
            mark = await side.get_mark(index, MARK)
            seen = mark.get("seen") if mark is not None else None
            if isinstance(seen, int):
                ago = max(0.0, now - seen / 1000)
                stale = bool(mark and mark.get("stale")) or ago > store.spec.horizon
                row.update(reached_s_ago=round(ago, 1), stale=stale)
        except OvercastError as exc:
            row.update(reachable=False, error=str(exc))
        report.append(row)
    return report


async def backlogs(resources: dict[str, Any], *, timeout: float = 0.5) -> dict[str, Any]:
    """Each backlog queue among ``resources``: ``depth`` (None where it could not be counted in
    ``timeout`` seconds), and where this process opened it, the age of the oldest item it knows
    of and its counts (parked, replayed, replay failures, dead letters) since it started."""
    handles = [(name, handle) for name, handle in resources.items() if hasattr(handle, "writes_dead_letters")]
    depths = await asyncio.gather(*(_depth(handle, timeout) for _, handle in handles))
    found: dict[str, Any] = {}
    for (name, handle), depth in zip(handles, depths, strict=True):
        row: dict[str, Any] = {"depth": depth}
        backlog = backlog_of(handle)
        if backlog is not None:
            oldest = backlog.oldest_parked_at if depth != 0 else None
            stats = backlog.stats
            row.update(
                oldest_age_s=None if oldest is None else round(max(0.0, time.time() - oldest), 1),
                parked=stats.parked,
                replayed=stats.replayed,
                replay_failures=stats.replay_failures,
                dead_letters=stats.dead_lettered,
            )
        found[name] = row
    return found


async def _depth(queue: Any, timeout: float) -> int | None:
    asked = _depths.get(id(queue))
    if asked is not None and time.monotonic() - asked[0] < DEPTH_FRESH:
        return asked[1]
    try:
        depth: int | None = await asyncio.wait_for(queue.depth(), timeout)
    except Exception:  # down, not provisioned, or no count on this provider: unknown, not an error here
        depth = None
    _depths[id(queue)] = (time.monotonic(), depth)
    return depth
