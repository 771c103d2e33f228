"""Console views of the app as a whole: resources and their health, secrets, the event feed, schedules."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from ....runtime.dispatch import run_schedule
from .latency import console_call
from .render import BASE, Refused, console_of, error_page, form_of, page
from .resilience import replicated

__all__ = ["events", "events_stream", "latency", "resources", "run_now", "schedules", "secrets"]

#: seconds a health check may take before it is shown as not answering
PING_TIMEOUT = 2.0
#: seconds between comments on an idle feed (a closed tab is noticed when one fails)
KEEPALIVE = 10.0
#: seconds a feed stays open; the browser reconnects at once with Last-Event-ID, losing
#: nothing, and a server shutting down waits at most this long for it
FEED_LIFETIME = 15.0
#: seconds a feed gathers events before writing them in one chunk, so a busy app costs a
#: few writes a second, not one per request
FEED_BATCH = 0.1


async def _health(handle: Any) -> tuple[bool, str]:
    try:
        await asyncio.wait_for(handle.ping(), PING_TIMEOUT)
    except TimeoutError:
        return False, f"no answer in {PING_TIMEOUT:g}s"
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, "ok"


def _row(handle: Any) -> dict[str, Any]:
    try:
        url = handle.resolved_url()
        return {"kind": handle.kind, "name": handle.resource_name, "url": str(url), "provider": url.scheme}
    except Exception as exc:
        return {
            "kind": handle.kind,
            "name": handle.resource_name,
            "url": f"{type(exc).__name__}: {exc}",
            "provider": "—",
        }


async def resources(request: Request) -> Response:
    """Every resource of the app: kind, provider, URL (never credentials: ``str`` of a URL hides them), health."""
    console = console_of(request)
    handles = list(console.app.resources.values())
    checks = await asyncio.gather(*(_health(h) for h in handles))
    rows = [{**_row(h), "ok": ok, "health": status} for h, (ok, status) in zip(handles, checks, strict=True)]
    subscriptions = [
        {"source": s.source.resource_name, "kind": s.source.kind, "name": s.name, "critical": s.critical}
        for s in console.app.subscriptions
    ]
    others = sorted(t for t in console.app.config.targets if t != console.app.target)
    elsewhere = [{**_row(h), "urls": [_url_on(console.app, h, t) for t in others]} for h in handles]
    context = {
        "rows": rows,
        "subscriptions": subscriptions,
        "others": others,
        "elsewhere": elsewhere,
        "replicated": await replicated(
            [h for h, (ok, _) in zip(handles, checks, strict=True) if ok or _opened(h)], console.events.latency
        ),
    }
    return page(request, "resources.html", context)


def _opened(handle: Any) -> bool:
    """Whether a handle's provider is open (a replicated one stays open with a member down)."""
    return getattr(handle, "_opened", None) is not None


def _url_on(app: Any, handle: Any, target: str) -> dict[str, Any]:
    """Where ``handle`` would be on another target (not checked: only this one is served here)."""
    try:
        return {
            "ok": True,
            "text": str(app.config.url_for(handle.kind, handle.resource_name, app=app.name, target=target)),
        }
    except Exception as exc:
        path = app.config.path
        return {"ok": False, "text": str(exc).replace(f" in {path}", "") if path else str(exc)}


async def secrets(request: Request) -> Response:
    """Secret names and where they come from; values are never read, let alone sent."""
    handles = [h for h in console_of(request).app.resources.values() if h.kind == "secret"]
    return page(request, "secrets.html", {"rows": [_row(h) for h in handles]})


async def events(request: Request) -> Response:
    log = console_of(request).events
    return page(request, "events.html", {"events": log.recent(100), "last_id": log.last_id})


async def events_stream(request: Request) -> Response:
    """The feed as server-sent events: every event after ``Last-Event-ID`` (or ``?after=``), then live ones."""
    log = console_of(request).events
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    if not raw.isdigit():
        return error_page(request, Refused(400, f"Last-Event-ID must be an event id, got {raw!r}"))
    after = int(raw)

    async def stream() -> AsyncIterator[str]:
        feed = log.follow()
        try:
            kept, last = log.stream_since(after)
            yield "retry: 500\n\n" + kept
            ends = time.monotonic() + FEED_LIFETIME
            while not feed.closed and (left := ends - time.monotonic()) > 0:
                try:
                    await asyncio.wait_for(feed.ready.wait(), min(KEEPALIVE, left))
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if not feed.closed:
                    await asyncio.sleep(FEED_BATCH)  # gather what comes meanwhile into one write
                if feed.closed:
                    return
                feed.taken()
                chunk, last = log.stream_since(last)
                if chunk:
                    yield chunk
        finally:
            log.unfollow(feed)

    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


async def latency(request: Request) -> Response:
    """Upstream latency per operation over the last minutes, from every timed upstream call of the app."""
    book = console_of(request).events.latency
    return page(request, "latency.html", {"rows": book.rows(time.time()), "minutes": book.window / 60})


async def schedules(request: Request) -> Response:
    """Each schedule: its expression, next run, and last run's outcome (from this server's feed)."""
    console = console_of(request)
    now = datetime.now(UTC)
    rows = []
    for job in console.app.schedules:
        last = console.events.last_runs.get(job.name)
        rows.append(
            {
                "name": job.name,
                "expression": job.schedule.expression,
                "next": job.schedule.next_after(now).strftime("%Y-%m-%d %H:%M:%S UTC"),
                "last": last,
                "last_at": None if last is None else datetime.fromtimestamp(last["at"], UTC).strftime("%H:%M:%S UTC"),
            }
        )
    return page(request, "schedules.html", {"rows": rows, "ran": request.query_params.get("ran")})


async def run_now(request: Request) -> Response:
    """Fire a schedule once, now, as its timer would: printed and in the feed like any run."""
    console = console_of(request)
    try:
        await form_of(request)
        name = request.path_params["name"]
        job = next((j for j in console.app.schedules if j.name == name), None)
        if job is None:
            raise Refused(404, f"{console.app.name} has no schedule {name!r}")
        token = console_call.set(False)  # the run's calls are the app's, as on its timer
        try:
            delivery = await run_schedule(job, app=console.app.name)
        finally:
            console_call.reset(token)
    except Exception as exc:
        return error_page(request, exc)
    with contextlib.suppress(Exception):
        console.report(delivery)
    return RedirectResponse(f"{BASE}/schedules?ran={job.name}", status_code=303)
