"""The console's event feed: the last HTTP requests, deliveries and schedule runs of ``overcast dev``.

Events are kept in a ring (the newest :data:`KEEP`) with increasing ids, so a feed that
reconnects with ``Last-Event-ID`` misses nothing still kept. Each connected feed has a
bounded queue; a feed too slow to keep up loses events rather than slowing the app.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ....resources.queue import Message
from .latency import LatencyBook

if TYPE_CHECKING:
    from ....runtime.cloudevent import CloudEvent
    from ....runtime.dispatch import Delivery
    from ....telemetry.http import RequestSummary

__all__ = ["KEEP", "EventLog"]

#: events kept for a page opened later or a feed that reconnects
KEEP = 500
#: events waiting for one slow feed before it starts losing them
BACKLOG = 1000
#: characters of a CloudEvent's data shown in the feed (the rest is cut)
MAX_DATA_SHOWN = 4000

Event = dict[str, Any]
#: what a feed receives when the server stops
CLOSE: Event = {"type": "close", "id": 0}


class EventLog:
    """Events of one dev server, in order, with the feeds that follow them."""

    def __init__(self, keep: int = KEEP) -> None:
        self.events: deque[Event] = deque(maxlen=keep)
        self.feeds: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]] = set()
        self.last_runs: dict[str, Event] = {}
        self.latency = LatencyBook()
        self._ids = itertools.count(1)

    def request(self, summary: RequestSummary) -> None:
        """Record one HTTP request of the app (a :func:`overcast.telemetry.summarize_requests` listener)."""
        calls = [
            {"upstream": u, "operation": op, "resource": r, "outcome": o, "ms": round(s * 1000, 2)}
            for u, op, r, o, s in summary.calls
        ]
        outcome = "ok" if summary.status < 400 else ("client-error" if summary.status < 500 else "error")
        self._add(
            {
                "type": "http",
                "title": f"{summary.method} {summary.path}",
                "status": summary.status,
                "outcome": outcome,
                "ms": round(summary.seconds * 1000, 2),
                "calls": calls,
            }
        )

    def delivery(self, delivery: Delivery) -> None:
        """Record one delivery or schedule run (a dev workers' ``on_delivery`` listener)."""
        kind = "schedule" if delivery.resource.startswith("schedule/") else "delivery"
        event: Event = {
            "type": kind,
            "title": f"{delivery.resource} → {delivery.handler}",
            "resource": delivery.resource,
            "handler": delivery.handler,
            "event_id": delivery.event_id,
            "attempt": delivery.attempt,
            "outcome": delivery.outcome,
            "ms": round(delivery.duration * 1000, 2),
            "error": None if delivery.error is None else f"{type(delivery.error).__name__}: {delivery.error}",
            "retry_in": delivery.retry_in,
        }
        if delivery.event is not None:
            event["cloudevent"] = cloudevent_of(delivery.event)
            original = delivery.event.original
            if kind == "delivery" and isinstance(original, Message):
                event["_message"] = (original.body, dict(original.attributes))  # for replay; never sent
        self._add(event)
        if kind == "schedule":
            self.last_runs[delivery.handler] = event

    def _add(self, event: Event) -> None:
        event["id"] = next(self._ids)
        event["at"] = time.time()
        self.events.append(event)
        if not self.feeds:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # a WSGI app's worker thread
            running = None
        for loop, queue in list(self.feeds):
            if loop is running:
                _offer(queue, event)  # no wake-up write: the loop is this thread's
                continue
            try:
                loop.call_soon_threadsafe(_offer, queue, event)
            except RuntimeError:  # that feed's loop is closed
                self.feeds.discard((loop, queue))

    def since(self, last_id: int) -> Iterator[Event]:
        """The kept events after ``last_id``, oldest first."""
        return (event for event in list(self.events) if event["id"] > last_id)

    def find(self, event_id: int) -> Event | None:
        """A kept event by id."""
        return next((event for event in list(self.events) if event["id"] == event_id), None)

    def recent(self, count: int = 100) -> list[Event]:
        """The newest ``count`` events, newest first."""
        return list(itertools.islice(reversed(self.events), count))

    def follow(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]:
        """Start a feed on the running loop; pass what it returns to :meth:`unfollow` when done."""
        feed = (asyncio.get_running_loop(), asyncio.Queue[Event](BACKLOG))
        self.feeds.add(feed)
        return feed

    def close_feeds(self) -> None:
        """End every open feed now (the server is stopping): each gets :data:`CLOSE`."""
        for _, queue in list(self.feeds):
            while queue.full():
                queue.get_nowait()
            queue.put_nowait(CLOSE)

    def unfollow(self, feed: tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]) -> None:
        self.feeds.discard(feed)


def cloudevent_of(event: CloudEvent) -> dict[str, Any]:
    """A CloudEvent as its JSON form (structured mode), its data cut at :data:`MAX_DATA_SHOWN` characters."""
    shown = event.to_dict()
    data = json.dumps(event.data, default=str, ensure_ascii=False)
    shown["data"] = event.data if len(data) <= MAX_DATA_SHOWN else data[:MAX_DATA_SHOWN] + "…"
    return shown


def public(event: Event) -> Event:
    """What of an event may leave the server (its ``_`` keys are kept for replay only)."""
    return {k: v for k, v in event.items() if not k.startswith("_")}


def _offer(queue: asyncio.Queue[Event], event: Event) -> None:
    if not queue.full():
        queue.put_nowait(event)
