"""Deliver queue and topic messages, schedule firings and routed events to the app's handlers.

Provider neutral: the local dev server, the Lambda, Cloud Run and Azure Functions
runtimes all turn what they receive into a :class:`Message` (or a :class:`CloudEvent`
for an event that is not a message of the app's own), hand it over here, and turn the
:class:`Delivery` into the platform's reply. A message is settled from the outcome:
success acks it; an exception gives it back with a backoff delay, so the queue delivers
it again and, after its ``max_attempts``, moves it to the dead letters. Where the
platform settles messages itself (Lambda's batch response, a push's HTTP status, the
Functions host), the queue is :class:`PlatformSettled` and the runtime replies instead.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from ..resilience.breaker import counts_as_down
from ..resources.queue import Message, Queue
from ..resources.records import record, replace
from ..telemetry import runtime as telemetry_runtime
from .cloudevent import CloudEvent
from .deferral import Deferral, event_work, subscription_deferral
from .router import takes_event

if TYPE_CHECKING:
    from ..app import ScheduledJob, Subscription
    from .router import Target

__all__ = [
    "QUEUE_MESSAGE",
    "SCHEDULE",
    "TOPIC_MESSAGE",
    "Delivery",
    "PlatformSettled",
    "backoff",
    "call_handler",
    "deliver",
    "message_event",
    "run_event",
    "run_schedule",
    "schedule_event",
]

QUEUE_MESSAGE = "overcast.queue.message"
TOPIC_MESSAGE = "overcast.topic.message"
SCHEDULE = "overcast.schedule"

log = logging.getLogger("overcast.dispatch")

Outcome = Literal["ok", "retry", "dead-letter", "failed", "deferred"]


@record(frozen=True)
class Delivery:
    """What became of one delivery, for logs and the dev server's output.

    Attributes:
        outcome: ``ok`` (acked), ``retry`` (given back, will come again),
            ``dead-letter`` (failed its last attempt; the queue moves it aside),
            ``failed`` (a schedule firing or a routed event raised; the platform's own
            rules, if any, bring it again), ``deferred`` (a non-critical handler's
            dependency is down: the event was parked in its backlog and the delivery acked).
        cause: why a delivery was deferred (the handler's error; None when its breaker was open).
        event: the CloudEvent the handler was given (for the dev console's feed and replay).
    """

    resource: str
    handler: str
    event_id: str
    attempt: int
    outcome: Outcome
    duration: float
    error: BaseException | None = None
    retry_in: float | None = None
    event: CloudEvent | None = None
    cause: BaseException | None = None


def backoff(attempt: int, *, base: float = 1.0, cap: float = 300.0) -> float:
    """Seconds to wait before delivering again after failed ``attempt`` (1, 2, 4, ... up to ``cap``)."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))


def message_event(
    message: Message, *, app: str, kind: str, resource: str, subscription: str | None = None
) -> CloudEvent:
    """The CloudEvent a handler receives for ``message`` from queue or topic ``resource``."""
    source = f"overcast://{app}/{kind}/{resource}"
    extensions: dict[str, Any] = {"attempts": message.attempts}
    if subscription is not None:
        extensions["subscription"] = subscription
    for name, value in message.attributes.items():
        key = "".join(ch for ch in name.lower() if ch.isalnum())
        if key and key not in extensions and key not in _RESERVED:
            extensions[key] = value
    return CloudEvent(
        type=TOPIC_MESSAGE if kind == "topic" else QUEUE_MESSAGE,
        source=source,
        id=message.id,
        data=message.body,
        subject=subscription,
        extensions=extensions,
        original=message,
    )


_RESERVED = frozenset(
    {"id", "source", "type", "specversion", "time", "subject", "data", "datacontenttype", "dataschema"}
)


def schedule_event(job: ScheduledJob, *, app: str, at: datetime | None = None) -> CloudEvent:
    """The CloudEvent of one firing of ``job`` at ``at`` (like EventBridge's "Scheduled Event")."""
    moment = at or datetime.now(UTC)
    return CloudEvent(
        type=SCHEDULE,
        source=f"overcast://{app}/schedule/{job.name}",
        id=f"{job.name}:{moment.astimezone(UTC).isoformat()}",
        time=moment,
        data={"schedule": job.schedule.expression, "name": job.name},
        subject=job.name,
        original=job,
    )


async def call_handler(handler: Callable[..., Any], event: CloudEvent | None) -> Any:
    """Call ``handler`` with ``event`` (or with nothing when ``event`` is None): awaited if async, else in a thread."""
    args: tuple[Any, ...] = () if event is None else (event,)
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__):
        return await handler(*args)
    result = await asyncio.to_thread(handler, *args)
    if inspect.isawaitable(result):
        return await result
    return result


class PlatformSettled(Queue):
    """Stands for a queue whose messages the platform settles from the runtime's reply (a
    partial batch response, a push's HTTP status, the Functions host's retry): acks and
    nacks here are no-ops."""

    offload = False

    async def _ack(self, message: Message) -> None:
        return None

    async def _nack(self, message: Message, delay: float) -> None:
        return None


async def deliver(
    subscription: Subscription,
    queue: Queue,
    message: Message,
    *,
    app: str,
    max_attempts: int | None = None,
    retry_delay: Callable[[int], float] = backoff,
    original: Any = None,
) -> Delivery:
    """Run ``subscription``'s handler on ``message`` received from ``queue``, then ack or nack it.

    Args:
        max_attempts: the queue's limit, to report the last failure as ``dead-letter``
            (default: the subscription's).
        retry_delay: seconds before the next delivery after a failed attempt (unused for a
            :class:`PlatformSettled` queue, whose platform decides).
        original: what the platform delivered (a trigger's message), kept as the event's
            ``original`` instead of ``message``.
    """
    kind = subscription.source.kind
    resource = subscription.source.resource_name
    event = message_event(
        message,
        app=app,
        kind=kind,
        resource=resource,
        subscription=subscription.name if kind == "topic" else None,
    )
    if original is not None:
        event = replace(event, original=original)
    label = f"{resource}/{subscription.name}" if kind == "topic" else resource
    limit = max_attempts if max_attempts is not None else subscription.max_attempts
    if not subscription.critical:  # its dependency being down parks the delivery instead
        deferral = subscription_deferral(subscription, app)
        return await _deliver_non_critical(deferral, subscription, queue, message, event, label, limit, retry_delay)
    started = time.perf_counter()
    try:
        await _call(subscription, label, message, event)
    except Exception as exc:
        duration = time.perf_counter() - started
        return await _given_back(subscription.name, label, queue, message, limit, retry_delay, exc, duration, event)
    duration = time.perf_counter() - started
    return await _handled(subscription, label, queue, message, event, duration)


async def _call(subscription: Subscription, label: str, message: Message, event: CloudEvent) -> None:
    if telemetry_runtime.active():
        await _traced(subscription.name, label, message, event, subscription.handler)
    else:
        await call_handler(subscription.handler, event)


async def _handled(
    subscription: Subscription, label: str, queue: Queue, message: Message, event: CloudEvent, duration: float
) -> Delivery:
    """Ack a message its handler took, and say so."""
    await queue.ack(message)
    log.info(
        "%s: %s handled message %s (attempt %d) in %.3fs",
        label,
        subscription.name,
        message.id,
        message.attempts,
        duration,
    )
    return Delivery(label, subscription.name, message.id, message.attempts, "ok", duration, event=event)


async def _deliver_non_critical(
    deferral: Deferral,
    subscription: Subscription,
    queue: Queue,
    message: Message,
    event: CloudEvent,
    label: str,
    limit: int,
    retry_delay: Callable[[int], float],
) -> Delivery:
    """:func:`deliver` for a ``critical=False`` subscriber: parked without a call while its
    breaker is open, parked when the handler finds its dependency down, else as any other."""
    started = time.perf_counter()
    if deferral.open() and (
        parked := await _deferred(deferral, subscription.name, queue, message, event, None, started)
    ):
        return parked
    try:
        await _call(subscription, label, message, event)
    except Exception as exc:
        if counts_as_down(exc) and (
            parked := await _deferred(deferral, subscription.name, queue, message, event, exc, started)
        ):
            return parked
        duration = time.perf_counter() - started
        return await _given_back(subscription.name, label, queue, message, limit, retry_delay, exc, duration, event)
    duration = time.perf_counter() - started
    deferral.succeeded()
    return await _handled(subscription, label, queue, message, event, duration)


async def _deferred(
    deferral: Deferral,
    handler: str,
    queue: Queue,
    message: Message,
    event: CloudEvent,
    exc: Exception | None,
    started: float,
) -> Delivery | None:
    """Park a non-critical delivery whose dependency is down and ack it; None when it could
    not be parked (the delivery then fails as any other, and the platform brings it again)."""
    if exc is not None:
        deferral.failed(exc)
    item = await deferral.park("event", event_work(event, message), exc)
    if item is None:
        return None
    await queue.ack(message)
    duration = time.perf_counter() - started
    why = "its breaker is open" if exc is None else repr(exc)
    log.info(
        "%s: %s deferred message %s (%s); parked as %s in %s",
        deferral.label,
        handler,
        message.id,
        why,
        item,
        deferral.name,
    )
    return Delivery(deferral.label, handler, message.id, message.attempts, "deferred", duration, event=event, cause=exc)


async def _given_back(
    handler: str,
    label: str,
    queue: Queue,
    message: Message,
    limit: int,
    retry_delay: Callable[[int], float],
    exc: Exception,
    duration: float,
    event: CloudEvent | None = None,
) -> Delivery:
    """Nack a message whose handler raised: again after the backoff, or, on its last attempt,
    to the dead letters. A platform-settled message comes again when the platform says."""
    last = message.attempts >= limit
    here = not isinstance(queue, PlatformSettled)
    delay = retry_delay(message.attempts) if here and not last else 0.0
    await queue.nack(message, delay=min(delay, queue.limits.max_visibility_timeout))
    again = f"retrying in {delay:g}s" if here else "the platform delivers it again"
    then = "moved to dead letters" if last else again
    log.warning(
        "%s: %s failed on message %s (attempt %d/%d): %r; %s",
        label,
        handler,
        message.id,
        message.attempts,
        limit,
        exc,
        then,
        exc_info=exc,
    )
    outcome: Outcome = "dead-letter" if last else "retry"
    retry_in = delay if here and not last else None
    return Delivery(label, handler, message.id, message.attempts, outcome, duration, exc, retry_in, event)


async def _traced(handler_name: str, label: str, message: Message, event: CloudEvent, handler: Any) -> None:
    """Run a subscriber in a span continuing the sender's trace, counting the invocation."""
    from ..telemetry import count
    from ..telemetry.propagation import consumer_span
    from ..telemetry.runtime import handled

    count("invocations", handler=handler_name)
    started = time.perf_counter()
    attributes = {
        "messaging.destination.name": label,
        "messaging.message.id": message.id,
        "overcast.handler": handler_name,
    }
    try:
        with consumer_span(f"process {label}", message.attributes, attributes):
            await call_handler(handler, event)
    except Exception:
        count("errors", handler=handler_name)
        raise
    finally:
        handled(handler_name, time.perf_counter() - started)


async def run_schedule(job: ScheduledJob, *, app: str, at: datetime | None = None, original: Any = None) -> Delivery:
    """Fire ``job`` once (its handler gets the event if it takes an argument); never raises.

    Args:
        original: what the platform delivered (a scheduler's event), kept as the event's ``original``.
    """
    event = schedule_event(job, app=app, at=at)
    if original is not None:
        event = replace(event, original=original)
    started = time.perf_counter()
    try:
        if telemetry_runtime.active():
            from ..telemetry import count

            count("invocations", handler=job.name)
        await call_handler(job.handler, event if takes_event(job.handler) else None)
    except Exception as exc:
        if telemetry_runtime.active():
            from ..telemetry import count

            count("errors", handler=job.name)
        duration = time.perf_counter() - started
        if telemetry_runtime.active():
            telemetry_runtime.handled(job.name, duration)
        log.warning("schedule %s failed: %r", job.name, exc, exc_info=exc)
        return Delivery(f"schedule/{job.name}", job.name, event.id, 1, "failed", duration, exc, event=event)
    duration = time.perf_counter() - started
    if telemetry_runtime.active():
        telemetry_runtime.handled(job.name, duration)
    log.info("schedule %s ran in %.3fs", job.name, duration)
    return Delivery(f"schedule/{job.name}", job.name, event.id, 1, "ok", duration, event=event)


async def run_event(target: Target, event: CloudEvent) -> Delivery:
    """Run ``target``'s handler on a routed event (a storage notification, a stream record, an
    Event Grid event: not a message of the app's own queues); never raises. The platform's
    own rules bring a failed event again; the runtime turns ``error`` into its reply."""
    started = time.perf_counter()
    attempt = event.extensions.get("attempts")
    attempt = attempt if isinstance(attempt, int) else 1
    sub = target.subscription
    deferral = None if sub is None or sub.critical else subscription_deferral(sub, sub.source.app.name)
    if deferral is not None and (parked := await _park_routed(deferral, target.name, event, attempt, None, started)):
        return parked
    try:
        await call_handler(target.handler, event if target.takes_event else None)
    except Exception as exc:
        if deferral is not None and (parked := await _park_routed(deferral, target.name, event, attempt, exc, started)):
            return parked
        duration = time.perf_counter() - started
        log.warning(
            "%s failed on %s %s from %s: %r", target.name, event.type, event.id, event.source, exc, exc_info=exc
        )
        return Delivery(event.source, target.name, event.id, attempt, "failed", duration, exc, event=event)
    duration = time.perf_counter() - started
    log.info("%s handled %s %s from %s in %.3fs", target.name, event.type, event.id, event.source, duration)
    return Delivery(event.source, target.name, event.id, attempt, "ok", duration, event=event)


async def _park_routed(
    deferral: Deferral, handler: str, event: CloudEvent, attempt: int, exc: Exception | None, started: float
) -> Delivery | None:
    """Park a routed event for a non-critical subscription whose dependency is down; None
    when it could not be parked or need not be (it then runs, or fails, as any other)."""
    if not (deferral.open() if exc is None else counts_as_down(exc)):
        return None
    if exc is not None:
        deferral.failed(exc)
    item = await deferral.park("event", event_work(event), exc)
    if item is None:
        return None
    duration = time.perf_counter() - started
    log.info(
        "%s: %s deferred %s %s from %s; parked as %s", deferral.label, handler, event.type, event.id, event.source, item
    )
    return Delivery(event.source, handler, event.id, attempt, "deferred", duration, event=event, cause=exc)
