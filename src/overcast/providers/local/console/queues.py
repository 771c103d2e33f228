"""Console views of messaging: each queue and topic subscription with its depth and dead
letters, re-drive of dead letters, and publishing to a topic from a form."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ....errors import NotSupported
from ....handles import TopicHandle
from .data import depth_of, handle_of
from .render import BASE, Refused, console_of, error_page, form_of, page

__all__ = ["event_detail", "peek", "publish", "queues", "redrive", "replay"]

#: dead letters moved back by one click at most (the rest stay for the next)
REDRIVE_MAX = 1000
#: messages a peek shows
PEEK_SHOWN = 20


def _sources(request: Request) -> dict[str, tuple[str, Any]]:
    """What can hold messages, by id: ``queue:NAME`` and ``subscription:TOPIC/NAME`` → (label, queue)."""
    console = console_of(request)
    found: dict[str, tuple[str, Any]] = {}
    for handle in console.app.resources.values():
        if handle.kind == "queue":
            found[f"queue:{handle.resource_name}"] = (f"queue {handle.resource_name}", handle)
    for sub in console.app.subscriptions:
        if isinstance(sub.source, TopicHandle):
            label = f"{sub.source.resource_name}/{sub.name}"
            found[f"subscription:{label}"] = (f"subscription {label}", console.subscription_queue(sub))
    return found


async def _dead_depth(queue: Any) -> int | None:
    try:
        dead = queue.dead_letters()
    except (NotImplementedError, AttributeError):
        return None
    return await depth_of(dead)


async def queues(request: Request) -> Response:
    """Depth and dead letters of every queue and topic subscription; topics with a publish form."""
    try:
        rows = [
            {"id": key, "label": label, "depth": await depth_of(queue), "dead": await _dead_depth(queue)}
            for key, (label, queue) in _sources(request).items()
        ]
    except Exception as exc:
        return error_page(request, exc)
    topics = sorted(h.resource_name for h in console_of(request).app.resources.values() if h.kind == "topic")
    notice = {k: request.query_params.get(k) for k in ("moved", "published")}
    return page(request, "queues.html", {"rows": rows, "topics": topics, **notice})


async def redrive(request: Request) -> Response:
    """Move dead letters back to their queue, each sent again then removed from the dead letters."""
    try:
        form = await form_of(request)
        source = form.get("source", "")
        found = _sources(request).get(source)
        if found is None:
            raise Refused(404, f"no queue or subscription {source!r} to re-drive")
        queue = found[1]
        dead = queue.dead_letters()
        moved = 0
        while moved < REDRIVE_MAX:
            batch = await dead.receive(max_messages=10, visibility_timeout=60, wait=0)
            if not batch:
                break
            for message in batch:
                await queue.send(message.body, attributes=message.attributes)
                await dead.ack(message)
                moved += 1
    except Exception as exc:
        return error_page(request, exc)
    return RedirectResponse(f"{BASE}/queues?" + urlencode({"moved": f"{moved} from {source}"}), status_code=303)


async def peek(request: Request) -> Response:
    """The messages waiting in a queue (or its dead letters), shown without receiving them: where the
    provider cannot peek natively the page says so rather than receive (which would hide each
    message from the app's consumer and count an attempt)."""
    try:
        source = request.query_params.get("source", "")
        dead = request.query_params.get("dead") == "1"
        found = _sources(request).get(source)
        if found is None:
            raise Refused(404, f"no queue or subscription {source!r}")
        queue = found[1].dead_letters() if dead else found[1]
        try:
            messages, why_not = await queue.peek(PEEK_SHOWN), None
        except NotSupported:
            messages, why_not = [], _not_supported(queue)
    except Exception as exc:
        return error_page(request, exc)
    rows = [
        {
            "id": m.id,
            "attempts": m.attempts,
            "attributes": m.attributes,
            "body": json.dumps(m.body, ensure_ascii=False, indent=1)[:2000],
        }
        for m in messages
    ]
    label = found[0] + (" (dead letters)" if dead else "")
    context = {"label": label, "source": source, "dead": dead, "rows": rows, "why_not": why_not, "shown": PEEK_SHOWN}
    return page(request, "peek.html", context)


def _not_supported(queue: Any) -> str:
    scheme = getattr(getattr(queue, "location", None), "scheme", None) or "this provider"
    return (
        f"Peeking is not supported by {scheme}: it has no way to show messages without receiving them, "
        "and receiving would hide each one from the app's consumer and count an attempt."
    )


async def publish(request: Request) -> Response:
    """Publish the form's JSON body to a topic, as the app would."""
    try:
        topic = handle_of(request, "topic")
        form = await form_of(request)
        try:
            body = json.loads(form.get("body", ""))
        except json.JSONDecodeError as exc:
            raise Refused(400, f"topic {topic.resource_name}: the message is not JSON: {exc}") from None
        message_id = await topic.publish(body)
    except Exception as exc:
        return error_page(request, exc)
    notice = f"{message_id} to {topic.resource_name}"
    return RedirectResponse(f"{BASE}/queues?" + urlencode({"published": notice}), status_code=303)


def _event_of(request: Request) -> dict[str, Any]:
    raw = request.path_params["event_id"]
    found = console_of(request).events.find(int(raw)) if raw.isdigit() else None
    if found is None:
        raise Refused(404, f"no event {raw!r} among the last kept (the feed keeps the newest 500)")
    return found


async def event_detail(request: Request) -> Response:
    """One event of the feed: its fields, its CloudEvent, and replay for a message delivery."""
    try:
        event = _event_of(request)
    except Exception as exc:
        return error_page(request, exc)
    cloudevent = json.dumps(event.get("cloudevent"), indent=2, ensure_ascii=False, default=str)
    context = {
        "event": event,
        "cloudevent": cloudevent if "cloudevent" in event else None,
        "replayable": "_message" in event,
        "replayed": request.query_params.get("replayed"),
    }
    return page(request, "event.html", context)


async def replay(request: Request) -> Response:
    """Send a delivered message again to the queue its handler consumes (a topic subscription's
    own queue, so only that handler gets it again), with its body and attributes."""
    try:
        await form_of(request)
        event = _event_of(request)
        if "_message" not in event:
            raise Refused(400, f"event {event['id']} is not a message delivery; only those can be replayed")
        resource = event["resource"]
        key = f"subscription:{resource}" if "/" in resource else f"queue:{resource}"
        found = _sources(request).get(key)
        if found is None:
            raise Refused(404, f"{resource} is no longer a queue or subscription of this app")
        body, attributes = event["_message"]
        message_id = await found[1].send(body, attributes=attributes)
    except Exception as exc:
        return error_page(request, exc)
    return RedirectResponse(f"{BASE}/events/{event['id']}?" + urlencode({"replayed": message_id}), status_code=303)
