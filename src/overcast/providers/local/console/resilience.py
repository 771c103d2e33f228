"""Console views of what survives an outage: each replicated resource's members (breaker, latency,
reachability, change-log depth) and each backlog of deferred work (depth, oldest age, items,
dead letters and their re-drive).

Read through the resilience layer's public faces only: ``resilience.health`` (``snapshot``,
``inspect``, ``replicated_of``), ``resilience.breaker.breakers()``, the replicator's
``unshipped`` and ``log_depth``, and ``runtime.deferral.app_backlogs`` with each
:class:`~overcast.resilience.backlog.Backlog`'s ``depth`` and ``redrive``; a backlog's items are
shown by :meth:`Queue.peek <overcast.resources.queue.Queue.peek>`, which receives nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ....errors import NotSupported
from ....resilience.breaker import breakers
from ....resilience.health import inspect, replicated_of, snapshot
from ....runtime.deferral import app_backlogs
from .latency import LatencyBook
from .render import BASE, Refused, console_of, error_page, form_of, page

__all__ = ["backlog", "backlog_redrive", "replicated"]

#: seconds the members of one replicated resource may take to answer the console's check
INSPECT_TIMEOUT = 3.0
#: items of a backlog (and of its dead letters) shown
SHOWN = 20
#: dead letters moved back by one click at most
REDRIVE_MAX = 1000


async def replicated(handles: list[Any], book: LatencyBook) -> list[dict[str, Any]]:
    """Each replicated resource among ``handles`` (already opened: the resources page pings
    them first) with a row per member: role, URL, breaker, failures, latency, replication lag
    (from ``book``), reachable, log depth."""
    known = snapshot({h.resource_name: h for h in handles})["resources"]
    found: list[tuple[Any, Any]] = [(h, replicated_of(h)) for h in handles if h.resource_name in known]
    checks = await asyncio.gather(*(_inspect(store) for _, store in found))
    every = breakers()
    now = time.time()
    shown = []
    for (handle, store), checked in zip(found, checks, strict=True):
        state = known[handle.resource_name]
        members = []
        for index, member in enumerate(state["members"]):
            check = checked[index] if index < len(checked) else {}
            breaker = every.get(str(store.members[index].url))
            members.append(
                {
                    **member,
                    "url": check.get("url", str(store.members[index].url)),
                    "reachable": check.get("reachable"),
                    "error": check.get("error"),
                    "log_depth": check.get("log_depth"),
                    "failures": breaker.failures if breaker is not None else 0,
                    "opened": breaker.transitions.get("open", 0) if breaker is not None else 0,
                    "lag": book.lag_of(handle.resource_name, member["role"], now),
                }
            )
        shown.append(
            {
                "name": handle.resource_name,
                "kind": state["kind"],
                "ack": state["ack"],
                "lag_p99_ms": state["replication_lag_p99_ms"],
                "unshipped": store.replicator.unshipped,
                "members": members,
            }
        )
    return shown


async def _inspect(store: Any) -> list[dict[str, Any]]:
    """``inspect`` of one store, or a row per member saying it did not answer in time."""
    try:
        return await asyncio.wait_for(inspect(store), INSPECT_TIMEOUT)
    except TimeoutError:
        return [{"reachable": False, "error": f"no answer in {INSPECT_TIMEOUT:g}s"} for _ in store.members]


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


async def _peek(queue: Any) -> tuple[list[Any] | None, str | None]:
    """Up to :data:`SHOWN` items of ``queue`` without receiving them, or None and why not."""
    try:
        return await queue.peek(SHOWN), None
    except NotSupported:
        scheme = getattr(getattr(queue, "location", None), "scheme", "this provider")
        return None, f"not supported by {scheme}: it cannot show items without receiving them"


def _item(message: Any, now: float) -> dict[str, Any]:
    """One backlog item as shown: when and why it was parked, what it is (from its envelope)."""
    body = message.body if isinstance(message.body, dict) else {}
    parked = body.get("parked_at")
    work = body.get("work") or {}
    event = work.get("event") if isinstance(work, dict) else None
    if isinstance(event, dict):
        what = f"event {event.get('id', '?')} ({event.get('type', '?')})"
        detail = event.get("data")
    else:
        what = "call"
        detail = work.get("arguments") if isinstance(work, dict) else work
    return {
        "id": message.id,
        "kind": body.get("kind", "?"),
        "what": what,
        "age": _age(now - parked if isinstance(parked, (int, float)) else None),
        "reason": body.get("reason", ""),
        "detail": json.dumps(detail, ensure_ascii=False, default=str)[:300],
        "replays": message.attempts,
    }


async def _backlog_row(app_name: str, label: str, backlog: Any) -> dict[str, Any]:
    now = time.time()
    depth, dead = await backlog.depth(), await backlog.depth(dead=True)
    items, why_not = await _peek(backlog.queue)
    dead_items, _ = await _peek(backlog.queue.dead_letters())
    shown = [_item(m, now) for m in items or []]
    ages = [now - m.body["parked_at"] for m in items or [] if isinstance(m.body, dict) and "parked_at" in m.body]
    breaker = breakers().get(f"deferred:{app_name}/{label}")
    stats = backlog.stats
    settled = stats.replayed + stats.dead_lettered + (depth or 0)
    return {
        # parked here and neither waiting nor settled: held by the replayer (one in hand while its
        # dependency is still down); an estimate from this process's counts, not the provider's
        "in_hand": max(0, stats.parked - settled) if depth is not None else None,
        "label": label,
        "queue": backlog.queue.name,
        "depth": depth,
        "dead": dead,
        "oldest": _age(max(ages)) if ages else "—",
        "waiting_items": shown,
        "dead_items": [_item(m, now) for m in dead_items or []],
        "peek": why_not,
        "breaker": breaker.state if breaker is not None else "closed",
        "stats": {
            "parked": stats.parked,
            "replayed": stats.replayed,
            "failures": stats.replay_failures,
            "dead": stats.dead_lettered,
        },
    }


async def backlog(request: Request) -> Response:
    """Every backlog of deferred work: depth, oldest item's age, items, dead letters, re-drive."""
    console = console_of(request)
    try:
        backlogs = app_backlogs(console.app)
        rows = [await _backlog_row(console.app.name, label, found) for label, found in backlogs.items()]
    except Exception as exc:
        return error_page(request, exc)
    return page(request, "backlog.html", {"rows": rows, "moved": request.query_params.get("moved")})


async def backlog_redrive(request: Request) -> Response:
    """Put a backlog's dead letters back at its end (at most :data:`REDRIVE_MAX` a click)."""
    console = console_of(request)
    try:
        form = await form_of(request)
        label = form.get("backlog", "")
        found = app_backlogs(console.app).get(label)
        if found is None:
            raise Refused(404, f"{console.app.name} has no backlog {label!r}")
        moved = await found.redrive(limit=REDRIVE_MAX)
    except Exception as exc:
        return error_page(request, exc)
    return RedirectResponse(f"{BASE}/backlog?" + urlencode({"moved": f"{moved} from {label}"}), status_code=303)
