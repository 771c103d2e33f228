"""The console's event feed: the last HTTP requests, deliveries and schedule runs of ``overcast dev``.

Events are kept in a ring (the newest :data:`KEEP`) with increasing ids, so a feed that
reconnects with ``Last-Event-ID`` misses nothing still kept. An HTTP request is kept as it
came (its id, time and the telemetry's summary: a tuple appended, nothing else on the
request's path); it becomes an event, and JSON, only when a page or a feed reads it. A
connected feed is woken once per batch, not handed each event; it reads what is new from
the ring, so a feed more than :data:`KEEP` events behind skips to the newest rather than
slowing the app.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from json.encoder import encode_basestring_ascii as _quoted  # what json.dumps quotes with
from typing import TYPE_CHECKING, Any

from ....resources.queue import Message
from .latency import LatencyBook

if TYPE_CHECKING:
    from ....runtime.cloudevent import CloudEvent
    from ....runtime.dispatch import Delivery
    from ....telemetry.http import RequestSummary

__all__ = ["KEEP", "EventLog", "Feed"]

#: events kept for a page opened later or a feed that reconnects
KEEP = 500
#: characters of a CloudEvent's data shown in the feed (the rest is cut)
MAX_DATA_SHOWN = 4000

Event = dict[str, Any]
#: what is kept of one event: (id, time, the request's summary or the event itself)
Entry = tuple[int, float, Any]


class Feed:
    """One connected feed: woken (once, until it reads) when events come; closed when the server stops."""

    __slots__ = ("closed", "loop", "pending", "ready")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.ready = asyncio.Event()
        #: woken and not read since: further events need no wake-up
        self.pending = False
        self.closed = False

    def taken(self) -> None:
        """The feed is about to read the ring: the next event wakes it again."""
        self.pending = False
        self.ready.clear()


class EventLog:
    """Events of one dev server, in order, with the feeds that follow them."""

    def __init__(self, keep: int = KEEP) -> None:
        self.entries: deque[Entry] = deque(maxlen=keep)
        self.feeds: set[Feed] = set()
        self.last_runs: dict[str, Event] = {}
        self.latency = LatencyBook()
        self._ids = itertools.count(1)
        self.last_id = 0

    def request(self, summary: RequestSummary) -> None:
        """Record one HTTP request of the app (a :func:`overcast.telemetry.summarize_requests`
        listener): kept as it is, made an event only when read."""
        self.last_id = number = next(self._ids)
        self.entries.append((number, time.time(), summary))
        if self.feeds:
            self._wake()

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
        self.last_id = event["id"] = next(self._ids)
        event["at"] = time.time()
        self.entries.append((event["id"], event["at"], event))
        if kind == "schedule":
            self.last_runs[delivery.handler] = event
        if self.feeds:
            self._wake()

    def _wake(self) -> None:
        """Wake each feed not woken yet (on its own loop; a WSGI app calls from a worker thread)."""
        for feed in list(self.feeds):
            if feed.pending:
                continue
            feed.pending = True
            if feed.loop is asyncio._get_running_loop():  # None on a WSGI app's worker thread
                feed.ready.set()
                continue
            try:
                feed.loop.call_soon_threadsafe(feed.ready.set)
            except RuntimeError:  # that feed's loop is closed
                self.feeds.discard(feed)

    def _kept(self, after: int) -> list[Entry]:
        """The kept entries after id ``after``, oldest first (a copy: other threads go on appending)."""
        kept = list(self.entries)
        start = len(kept)
        while start > 0 and kept[start - 1][0] > after:
            start -= 1
        return kept[start:]

    def since(self, last_id: int) -> list[Event]:
        """The kept events after ``last_id``, oldest first."""
        return [event_of(entry) for entry in self._kept(last_id)]

    def stream_since(self, last_id: int) -> tuple[str, int]:
        """The kept events after ``last_id`` as server-sent events, and the id of the last one."""
        kept = self._kept(last_id)
        if not kept:
            return "", last_id
        return "".join(sse(entry) for entry in kept), kept[-1][0]

    def find(self, event_id: int) -> Event | None:
        """A kept event by id."""
        found = next((entry for entry in list(self.entries) if entry[0] == event_id), None)
        return None if found is None else event_of(found)

    def recent(self, count: int = 100) -> list[Event]:
        """The newest ``count`` events, newest first."""
        return [event_of(entry) for entry in itertools.islice(reversed(list(self.entries)), count)]

    def follow(self) -> Feed:
        """Start a feed on the running loop; pass it to :meth:`unfollow` when done."""
        feed = Feed(asyncio.get_running_loop())
        self.feeds.add(feed)
        return feed

    def close_feeds(self) -> None:
        """End every open feed now (the server is stopping; called on the feeds' loop)."""
        for feed in list(self.feeds):
            feed.closed = True
            feed.ready.set()

    def unfollow(self, feed: Feed) -> None:
        self.feeds.discard(feed)


def event_of(entry: Entry) -> Event:
    """A kept entry as the event pages and feeds show: a delivery's as recorded, a request's made now."""
    number, at, raw = entry
    if type(raw) is dict:
        return raw
    summary: RequestSummary = raw
    calls = [
        {"upstream": u, "operation": op, "resource": r, "outcome": o, "ms": round(s * 1000, 2)}
        for u, op, r, o, s in summary.calls
    ]
    status = summary.status
    return {
        "type": "http",
        "title": f"{summary.method} {summary.path}",
        "status": status,
        "outcome": "ok" if status < 400 else ("client-error" if status < 500 else "error"),
        "ms": round(summary.seconds * 1000, 2),
        "calls": calls,
        "id": number,
        "at": at,
    }


def sse(entry: Entry) -> str:
    """One kept entry as a server-sent event (its ``_`` keys stay on the server)."""
    number, _, raw = entry
    if type(raw) is dict:
        return f"id: {number}\nevent: {raw['type']}\ndata: {json.dumps(public(raw), default=str)}\n\n"
    return f"id: {number}\nevent: http\ndata: {http_json(entry)}\n\n"


def http_json(entry: Entry) -> str:
    """``json.dumps(event_of(entry))`` of a request, written straight from its summary: the
    feed's one cost per request, so no dictionary is built on the way."""
    number, at, summary = entry
    calls = ", ".join(
        f'{{"upstream": {_quoted(u)}, "operation": {_quoted(op)}, "resource": {_quoted(r)}, '
        f'"outcome": {_quoted(o)}, "ms": {round(s * 1000, 2)!r}}}'
        for u, op, r, o, s in summary.calls
    )
    status = summary.status
    outcome = "ok" if status < 400 else ("client-error" if status < 500 else "error")
    return (
        f'{{"type": "http", "title": {_quoted(f"{summary.method} {summary.path}")}, "status": {int(status)}, '
        f'"outcome": "{outcome}", "ms": {round(summary.seconds * 1000, 2)!r}, "calls": [{calls}], '
        f'"id": {number}, "at": {at!r}}}'
    )


def cloudevent_of(event: CloudEvent) -> dict[str, Any]:
    """A CloudEvent as its JSON form (structured mode), its data cut at :data:`MAX_DATA_SHOWN` characters."""
    shown = event.to_dict()
    data = json.dumps(event.data, default=str, ensure_ascii=False)
    shown["data"] = event.data if len(data) <= MAX_DATA_SHOWN else data[:MAX_DATA_SHOWN] + "…"
    return shown


def public(event: Event) -> Event:
    """What of an event may leave the server (its ``_`` keys are kept for replay only)."""
    return {k: v for k, v in event.items() if not k.startswith("_")}
