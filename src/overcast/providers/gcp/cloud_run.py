"""The app on Cloud Run or Cloud Functions (2nd gen): ``asgi = cloud_run_app(overcast_app)``.

The result is one ASGI app for the container's server (``overcast run`` under a
``gcp`` target, or ``uvicorn module:asgi``):

* every request outside ``/_overcast/`` goes to the app's ASGI/WSGI app unchanged;
* ``POST /_overcast/pubsub[/RESOURCE[/SUBSCRIPTION]]`` and ``POST /_overcast/events[/...]``
  take what Google delivers: a Pub/Sub push (``{"message", "subscription"}``), an
  Eventarc CloudEvent (binary or structured mode), a Cloud Storage notification, or a
  legacy background event. Each becomes one :class:`~overcast.CloudEvent` for the
  handler it is for; a Pub/Sub message from one of the app's own queues or topics is
  the same ``overcast.queue.message`` / ``overcast.topic.message`` event the app gets
  on every cloud;
* ``POST /_overcast/schedule/NAME`` fires ``@app.schedule`` job NAME (a Cloud Scheduler
  HTTP target).

A 2xx answer acknowledges the delivery; a handler that raises answers 500, so Pub/Sub
delivers again (with its retry policy's backoff). A message of the app's own queue or
topic delivered past the queue's ``max_attempts`` (Pub/Sub's ``deliveryAttempt``) is moved
to the ``pubsub://`` provider's dead letters and acknowledged, as a pull would.

Every delivery must carry a Google-signed OIDC token from the service accounts (and for
the audience) ``[targets.NAME.events]`` names (or ``OVERCAST_GCP_PUSH_EMAILS`` /
``OVERCAST_GCP_PUSH_AUDIENCE``): a missing or bad token is a 401. With nothing
configured every delivery is refused (403) unless ``verify = "off"``
(``OVERCAST_EVENTS_VERIFY=off``) says the service is private; the start-up log says which.

Which handler an event is for: the path's ``RESOURCE/SUBSCRIPTION`` (or a subscription
or route name) when given; else the push's subscription, matched against the Pub/Sub
subscriptions of the app's queues and topics; else the first of ``routes`` (then of the
app's ``@app.on("pattern")``) whose pattern matches the event's type, source or subject;
else the app's ``@app.on(bucket)`` for a Cloud Storage event of that ``gs://`` bucket.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError, InvalidArgument
from ...handles import BucketHandle, QueueHandle, TopicHandle
from ...resources.queue import Message
from ...runtime.cloudevent import CloudEvent
from ...runtime.dispatch import Delivery, PlatformSettled, deliver, run_event, run_schedule
from ...runtime.event_auth import announce
from ...runtime.router import Handler, Router, Target, UnroutedEvent, subscription_target
from ...telemetry.runtime import cold_start, counted, mark_warm
from . import events
from .oidc import GoogleOIDCVerifier, Unauthorized, describe, verifier_for

if TYPE_CHECKING:
    from ...app import App, EventRoute, Subscription

__all__ = ["CloudRunApp", "UnroutedEvent", "cloud_run_app", "create_asgi"]

log = logging.getLogger("overcast.gcp.cloud_run")

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]

PREFIX = "/_overcast"
#: Pub/Sub's own limit on a message is 10 MB; its push body is that, base64-encoded, plus the envelope
MAX_BODY = 16 * 1024 * 1024


def cloud_run_app(
    app: App,
    *,
    routes: Mapping[str, str | Handler] | None = None,
    verifier: GoogleOIDCVerifier | None = None,
    prefix: str = PREFIX,
) -> CloudRunApp:
    """The ASGI app serving ``app`` on Cloud Run.

    Args:
        routes: events that are not messages of the app's own queues and topics (Cloud
            Storage, Firestore, audit logs, foreign topics): a pattern (``fnmatch``,
            tried on the event's type, source and subject) mapped to a subscription or
            schedule name of ``app``, or to a function taking a :class:`~overcast.CloudEvent`.
        verifier: checks the OIDC token of every delivery; by default the one the target's
            ``[targets.NAME.events]`` table or the environment configures (see the module).
        prefix: the path under which deliveries arrive.
    """
    unverified = False
    if verifier is None:
        verifier, unverified = verifier_for(app)
    return CloudRunApp(app, routes=routes or {}, verifier=verifier, prefix=prefix, unverified=unverified)


def create_asgi() -> CloudRunApp:
    """Uvicorn factory for ``overcast run --workers N`` on a gcp target (the App named by ``OVERCAST_APP``)."""
    from pathlib import Path

    from ...loader import load_app

    folder = os.environ.get("OVERCAST_APP_DIR")
    return cloud_run_app(load_app(os.environ.get("OVERCAST_APP") or None, cwd=Path(folder) if folder else None))


class CloudRunApp:
    """See :func:`cloud_run_app`."""

    def __init__(
        self,
        app: App,
        *,
        routes: Mapping[str, str | Handler],
        verifier: GoogleOIDCVerifier | None,
        prefix: str = PREFIX,
        unverified: bool = False,
    ) -> None:
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ConfigError(f"cloud_run_app: prefix {prefix!r} must start with '/' and not end with one")
        self.app = app
        self.verifier = verifier
        #: verification switched off explicitly (a private service); else, without a verifier, all is refused
        self.unverified = unverified and verifier is None
        announce(log, *describe(verifier, self.unverified, f"{app.name}: {prefix}/"))
        self.prefix = prefix
        self._prefix_slash = prefix + "/"
        # routes given here come first, then the app's @app.on("pattern") handlers
        declared = {r.source: r.handler for r in app.events if isinstance(r.source, str) and r.source not in routes}
        self.router = Router(app, {**routes, **declared}, owner="cloud_run_app")
        self.routes = self.router.routes
        # the Pub/Sub subscription that pushed: the HTTP status settles the message
        self._settled = PlatformSettled("memory://pubsub-push", name="pubsub-push")
        self._by_subscription: dict[str, Subscription] | None = None
        self._cold = True

    # -- routing --------------------------------------------------------------------------------

    def _index(self) -> dict[str, Subscription]:
        """The app's subscriptions by every Pub/Sub subscription id they may have on this target."""
        if self._by_subscription is None:
            index: dict[str, Subscription] = {}
            for sub in self.app.subscriptions:
                for name in _pubsub_names(sub):
                    index.setdefault(name, sub)
            self._by_subscription = index
        return self._by_subscription

    def _by_path(self, parts: list[str]) -> Target | None:
        """``RESOURCE/SUBSCRIPTION``, ``RESOURCE`` (a queue, or a topic with one subscriber) or a route name."""
        if not parts:
            return None
        subs = self.app.subscriptions
        if len(parts) == 2:
            found = [s for s in subs if s.source.resource_name == parts[0] and s.name == parts[1]]
        elif len(parts) == 1:
            found = [s for s in subs if s.source.resource_name == parts[0]]
            if len(found) != 1:
                found = [s for s in subs if s.name == parts[0]] or found
            if not found:
                routed = self.router.by_key(parts[0])
                if routed is not None:
                    return routed
                named = [r for r in self.app.events if isinstance(r.source, BucketHandle) and r.name == parts[0]]
                if named:  # an @app.on(bucket) handler by name
                    return Target(named[0].name, named[0].handler)
        else:
            found = []
        if len(found) == 1:
            return subscription_target(found[0])
        where = "/".join(parts)
        if found:
            raise UnroutedEvent(
                f"{self.app.name}: {where!r} names {len(found)} subscriptions; use RESOURCE/SUBSCRIPTION"
            )
        raise UnroutedEvent(f"{self.app.name}: no subscription or route {where!r}")

    # -- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._cold and scope["type"] == "http":
            await self._first(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"].startswith(self._prefix_slash):
            await self._delivery(scope, receive, send)
            return
        await self.app.asgi(scope, receive, send)

    async def _first(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The container's first request: counted as its cold start (``overcast.cold_starts``)
        and logged with ``cold_start: true``; the lines of later requests say false."""
        self._cold = False
        delivery = scope["path"].startswith(self._prefix_slash)
        cold = cold_start("delivery" if delivery else "http")
        try:
            if delivery:
                await self._delivery(scope, receive, send)
            else:
                await self.app.asgi(scope, receive, send)
        finally:
            if cold:
                mark_warm()

    async def _delivery(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await _answer(send, 405, "deliveries are POSTed", [(b"allow", b"POST")])
            return
        headers = _headers(scope)
        body = await _read(receive)
        if body is None:
            await _answer(send, 413, f"body over {MAX_BODY} bytes")
            return
        if self.verifier is None and not self.unverified:
            log.warning("%s: refused delivery to %s: no verification configured", self.app.name, scope["path"])
            await _answer(send, 403, _NOT_CONFIGURED)
            return
        try:
            if self.verifier is not None:
                await self._verify(headers.get("authorization"), _request_urls(scope, headers))
            status = await self.handle(scope["path"][len(self._prefix_slash) :], headers, body)
        except Unauthorized as exc:
            log.warning("%s: refused delivery to %s: %s", self.app.name, scope["path"], exc)
            await _answer(send, 401, str(exc), [(b"www-authenticate", b"Bearer")])
            return
        except UnroutedEvent as exc:
            log.error("%s: %s", self.app.name, exc)
            await _answer(send, 404, str(exc))
            return
        except InvalidArgument as exc:
            log.warning("%s: bad delivery to %s: %s", self.app.name, scope["path"], exc)
            await _answer(send, 400, str(exc))
            return
        except Exception as exc:
            await _answer(send, 500, f"{type(exc).__name__}: {exc}")
            return
        await _answer(send, status, "")

    async def _verify(self, authorization: str | None, urls: list[str]) -> None:
        verifier = self.verifier
        assert verifier is not None
        if verifier._fixed:
            verifier.verify(authorization, urls=urls)
        else:
            await asyncio.to_thread(verifier.verify, authorization, urls=urls)

    async def handle(self, path: str, headers: Mapping[str, str], body: bytes) -> int:
        """Deliver one request under the prefix (``path`` without it); return the status to answer.

        Raises:
            UnroutedEvent: nothing handles it.
            InvalidArgument: the body is not an event.
            Exception: what the handler raised.
        """
        kind, _, rest = path.partition("/")
        parts = [p for p in rest.split("/") if p]
        if kind == "schedule":
            await self._schedule(parts)
            return 204
        if kind not in ("pubsub", "events"):
            raise UnroutedEvent(
                f"{self.app.name}: {self.prefix}/{kind} is not a delivery path (pubsub, events, schedule)"
            )
        target = self._by_path(parts)
        if events.is_cloudevent(headers):
            event = events.from_http(headers, body)
            await self._run_event(event, target)
            return 204
        payload = _json(body)
        if events.is_push_envelope(payload):
            await self._push(payload, target)
        elif events.is_legacy_event(payload):
            await self._run_event(events.legacy_event(payload), target)
        else:
            raise events.BadEvent("not a Pub/Sub push, a CloudEvent (binary or structured) or a background event")
        return 204

    async def _schedule(self, parts: list[str]) -> None:
        name = "/".join(parts)
        job = next((j for j in self.app.schedules if j.name == name), None)
        if job is None:
            raise UnroutedEvent(f"{self.app.name}: no schedule {name!r}")
        _succeeded(await run_schedule(job, app=self.app.name))

    async def _push(self, envelope: Mapping[str, Any], target: Target | None) -> None:
        subscription = str(envelope["subscription"])
        if target is None and not events.storage_notification(envelope):
            sub = self._index().get(subscription.rsplit("/", 1)[-1])
            if sub is not None:
                target = subscription_target(sub)
        if target is not None and target.subscription is not None and not events.storage_notification(envelope):
            await self._deliver_message(target.subscription, envelope)
            return
        await self._run_event(events.push_event(envelope), target)

    async def _deliver_message(self, sub: Subscription, envelope: Mapping[str, Any]) -> None:
        """A message of the app's own queue or topic: the event the app gets on every cloud."""
        message = events.push_message(envelope)
        attempt = envelope.get("deliveryAttempt")
        attributes = message.get("attributes") or {}
        msg = Message(
            id=message["messageId"],
            body=_decode(message.get("data")),
            attributes={str(k): str(v) for k, v in attributes.items()} if isinstance(attributes, Mapping) else {},
            attempts=attempt if isinstance(attempt, int) and attempt > 0 else 1,
            receipt=message["messageId"],
        )
        if msg.attempts > 1 and await self._dead_letter(sub, message, msg.attempts):
            return
        _succeeded(await deliver(sub, self._settled, msg, app=self.app.name, original=envelope))

    async def _dead_letter(self, sub: Subscription, message: Mapping[str, Any], attempts: int) -> bool:
        """Past the queue's ``max_attempts``: move the message to the dead letters, as a pull does.

        Pub/Sub's own dead-letter policy (which the ``pubsub://`` provider sets at 100, its
        most) counts the deliveries; the queue's lower limit is applied here, as on receive.
        """
        queue = _provider_queue(sub)
        limit = getattr(queue, "max_attempts", None)
        limit = limit if isinstance(limit, int) else sub.max_attempts
        publish = getattr(queue, "_publish_raw", None)
        dead = getattr(queue, "dead_path", None)
        if not limit or attempts <= limit or not callable(publish) or not isinstance(dead, str):
            return False
        raw = message.get("data") or ""
        data = base64.b64decode(raw) if isinstance(raw, str) else b""
        attributes = message.get("attributes") or {}
        attributes = {str(k): str(v) for k, v in attributes.items()} if isinstance(attributes, Mapping) else {}
        attributes["overcast.id"] = str(message["messageId"])
        await asyncio.to_thread(publish, dead, data, attributes)
        log.warning(
            "%s/%s: message %s moved to dead letters %s after %d attempts",
            sub.source.resource_name,
            sub.name,
            message["messageId"],
            dead,
            limit,
        )
        return True

    async def _run_event(self, event: CloudEvent, target: Target | None) -> None:
        data = event.data
        if (
            event.type == events.PUBSUB_PUBLISHED
            and isinstance(data, Mapping)
            and isinstance(data.get("message"), Mapping)
        ):
            # Eventarc's Pub/Sub trigger (or a legacy one): a message of one of the app's topics
            if target is None:
                target = self._by_topic(event.source)
            if target is not None and target.subscription is not None:
                await self._deliver_message(target.subscription, data)
                return
        if target is None:
            target = self.router.match(event.type, event.source, event.subject)
        if target is None:
            route = declared_storage_route(self.app, event)
            target = None if route is None else Target(route.name, route.handler)
        if target is None:
            raise self.router.unrouted(
                f"no route for event {event.type} from {event.source}"
                + (f" ({event.subject})" if event.subject else ""),
                f"add one to cloud_run_app(routes=...) or post it to {self.prefix}/events/SUBSCRIPTION",
            )
        if target.job is not None:  # a scheduler's event fires the schedule
            _succeeded(await run_schedule(target.job, app=self.app.name))
            return
        delivery = await run_event(target, event)
        counted(target.name, failed=delivery.error is not None, seconds=delivery.duration)
        _succeeded(delivery)

    def _by_topic(self, source: str) -> Target | None:
        topic = source.rsplit("/topics/", 1)[-1] if "/topics/" in source else None
        if not topic:
            return None
        found = [s for s in self.app.subscriptions if topic in _topic_ids(s)]
        if len(found) == 1:
            return subscription_target(found[0])
        return None


#: Cloud Storage's event types by the kind ``@app.on(bucket, events=...)`` names
_STORAGE_KINDS = {"created": events.STORAGE_FINALIZED, "deleted": events.STORAGE_DELETED}


def declared_storage_route(app: App, event: CloudEvent) -> EventRoute | None:
    """The app's ``@app.on(bucket)`` handler for a Cloud Storage event (Eventarc's or a
    bucket notification's): its ``gs://`` bucket, its kind, keys under the bucket's and the
    route's prefix."""
    bucket = event.source.rsplit("/buckets/", 1)[-1] if "/buckets/" in event.source else None
    subject = event.subject or ""
    if bucket is None or not subject.startswith("objects/"):
        return None
    key = subject.removeprefix("objects/")
    for route in app.events:
        source = route.source
        if not isinstance(source, BucketHandle) or event.type not in {_STORAGE_KINDS[k] for k in route.events}:
            continue
        try:
            url = source.resolved_url()
        except ConfigError:
            continue
        folder = url.path.strip("/")
        if url.scheme == "gs" and url.host == bucket and key.startswith(f"{folder}/" * bool(folder) + route.prefix):
            return route
    return None


def _succeeded(delivery: Delivery) -> None:
    """Raise what the handler raised: the delivery answers 500 and Pub/Sub pushes it again."""
    if delivery.error is not None:
        raise delivery.error


# -- names on Pub/Sub ------------------------------------------------------------------------


def _topic_ids(sub: Subscription) -> set[str]:
    source = sub.source
    ids = {source.resource_name}
    try:
        url = source.resolved_url()
    except ConfigError:
        return ids
    if url.scheme == "pubsub" and url.host:
        ids.add(url.host.rsplit("/", 1)[-1])
    return ids


def _pubsub_names(sub: Subscription) -> list[str]:
    """The Pub/Sub subscription ids ``sub`` may be pushed from: what its provider says, else conventions."""
    names: list[str] = []
    source = sub.source
    provider_name = _provider_subscription(sub)
    if provider_name:
        names.append(provider_name)
    for topic in sorted(_topic_ids(sub)):
        if isinstance(source, TopicHandle):
            names += [f"{topic}-{sub.name}", f"{topic}.{sub.name}", sub.name]
        elif isinstance(source, QueueHandle):
            names += [topic, f"{topic}-sub", f"{topic}-{sub.name}"]
    return names


def _provider_queue(sub: Subscription) -> Any:
    """The ``pubsub://`` provider's queue behind ``sub`` (None on another provider, or if it cannot open)."""
    source = sub.source
    try:
        if source.resolved_url().scheme != "pubsub":
            return None
        if isinstance(source, TopicHandle):
            return source.subscription(sub.name, max_attempts=sub.max_attempts)
        return source._target()
    except Exception:  # the provider may be missing or misconfigured; conventions still apply
        return None


def _provider_subscription(sub: Subscription) -> str | None:
    """The subscription id the ``pubsub://`` provider uses for ``sub``, when it exposes one."""
    queue = _provider_queue(sub)
    if queue is None:
        return None
    for attr in ("subscription_id", "subscription_name", "subscription"):
        value = getattr(queue, attr, None)
        if isinstance(value, str) and value:
            return value.rsplit("/", 1)[-1]
    return None


# -- HTTP helpers ------------------------------------------------------------------------------


_NOT_CONFIGURED = (
    "delivery refused: this service verifies no event deliveries yet. Name the sender's service "
    "account in [targets.NAME.events] service_accounts (or OVERCAST_GCP_PUSH_EMAILS), or set "
    'verify = "off" (OVERCAST_EVENTS_VERIFY=off) if the service is private'
)


def _request_urls(scope: Scope, headers: Mapping[str, str]) -> list[str]:
    """The audiences a Google sender sets by default: the URL posted to (Pub/Sub, Cloud
    Scheduler), with its query, and the service's own URL (Eventarc)."""
    host = headers.get("host")
    if not host:
        return []
    scheme = headers.get("x-forwarded-proto", "").split(",")[0].strip() or scope.get("scheme", "https")
    origin = f"{scheme}://{host}"
    path = scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    urls = [origin + path, origin]
    if query:
        urls.insert(0, f"{origin}{path}?{query}")
    return urls


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _read(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _answer(send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode("utf-8", "replace")  # the text may quote what was sent, lone surrogates and all
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise events.BadEvent(f"body is not JSON: {exc}") from None


def _decode(data: Any) -> Any:
    """A Pub/Sub message's base64 ``data`` as the JSON value sent, else its text, else its bytes."""
    if data is None or data == "":
        return None
    if not isinstance(data, str):
        raise events.BadEvent("Pub/Sub push: message.data is not base64 text")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise events.BadEvent("Pub/Sub push: message.data is not valid base64") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    try:
        return json.loads(text)
    except ValueError:
        return text
