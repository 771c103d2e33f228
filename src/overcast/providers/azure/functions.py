"""The app on Azure Functions (Python v2 programming model): ``app = function_app(overcast_app)``.

The returned ``azure.functions.FunctionApp`` holds:

* ``http``: every route of the app's ASGI/WSGI app (``{*route}``, all methods);
* one Storage Queue trigger per subscription: a queue's own, or the queue a topic
  keeps for each subscription (``azqueue://`` on the target);
* one Event Grid trigger per ``event_grid`` entry and per ``@app.on`` route a blob trigger
  cannot express (a bucket's deletions, keys under a prefix, an outside source's pattern),
  named after the route, plus the webhook ``eventgrid``
  (``/eventgrid/{name}``) that answers the subscription handshakes and takes either
  schema from an Event Grid webhook subscription;
* one blob trigger per ``blobs`` entry and per ``@app.on(bucket)`` of created blobs;
* one timer per ``@app.schedule`` (the expression in NCRONTAB, see :func:`ncrontab`).

Every trigger's payload reaches the handler as a :class:`~overcast.CloudEvent` whose
``original`` is what the Functions worker gave (``func.QueueMessage``,
``func.InputStream``, ``func.EventGridEvent``). Queue messages are settled by the
host: a handler that raises makes the host deliver the message again, and after
``maxDequeueCount`` (``host.json``) move it to ``<queue>-poison``.
"""

import asyncio
import contextlib
import importlib
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import azure.functions as func

from ...errors import ConfigError, MissingDependency, NotFound
from ...handles import BucketHandle, QueueHandle, TopicHandle
from ...resources.queue import Message, Queue
from ...runtime.cloudevent import CloudEvent
from ...runtime.dispatch import PlatformSettled, deliver, run_event, run_schedule
from ...runtime.router import Router, Target
from ...runtime.schedule import year_matches
from ...telemetry import runtime as telemetry_runtime
from ...telemetry.logs import request_id
from ...telemetry.runtime import invocation
from . import eventgrid
from .functions_http import AsgiHttpFunction
from .functions_project import blob_path, ncrontab, queue_max_attempts, render_project
from .webhook_auth import WebhookAuth

if TYPE_CHECKING:
    from ...app import App, EventRoute, ScheduledJob, Subscription

__all__ = ["OvercastFunctions", "function_app", "ncrontab", "render_project"]

log = logging.getLogger("overcast.azure.functions")

Route = str | Callable[..., Any]
Level = Literal["anonymous", "function", "admin"]
#: the app setting the triggers read their storage connection from, unless told otherwise
DEFAULT_CONNECTION = "AzureWebJobsStorage"


def function_app(
    app: "App",
    *,
    event_grid: Mapping[str, Route] | None = None,
    blobs: Mapping[str, Route] | None = None,
    connection: str = DEFAULT_CONNECTION,
    http_auth_level: Level = "anonymous",
    webhook_auth_level: Level = "function",
    base_path: str = "",
    lifespan: Literal["auto", "on", "off"] = "auto",
) -> func.FunctionApp:
    """The Azure Functions app of ``app``: in ``function_app.py``, ``app = function_app(overcast_app)``.

    Args:
        event_grid: Event Grid subscriptions: a name (the function ``eventgrid_<name>`` and
            the webhook path ``/eventgrid/<name>``) mapped to a subscription or schedule
            name of ``app``, or to a function taking a :class:`~overcast.CloudEvent`. The
            app's ``@app.on`` routes need no entry: each is a subscription named after it.
        blobs: blob triggers: a bucket declared on ``app`` (its ``azblob://`` container and
            prefix) or a blob path (``"uploads/{name}"``) mapped like ``event_grid``.
        connection: the app setting holding the storage connection of the triggers, unless a
            resource's URL names its own with the option ``connection_env``.
        http_auth_level: of the HTTP app (``anonymous``: the app does its own auth).
        webhook_auth_level: of the Event Grid webhook (``function``: a key in the URL).
        base_path: a prefix to strip from request paths (the host's ``routePrefix``).
        lifespan: run the ASGI lifespan's startup once per worker (``auto``, ``on``, ``off``).
    """
    return OvercastFunctions(
        app,
        event_grid=event_grid,
        blobs=blobs,
        connection=connection,
        http_auth_level=http_auth_level,
        webhook_auth_level=webhook_auth_level,
        base_path=base_path,
        lifespan=lifespan,
    ).build()


def function_name(*parts: str) -> str:
    """A valid function name (letters, digits, ``_``; a letter first) from ``parts``."""
    text = "_".join(re.sub(r"[^A-Za-z0-9_]", "_", part) for part in parts if part)
    return text if text[:1].isalpha() else f"f_{text}"


def declared_blobs(app: "App") -> dict[str, Route]:
    """``@app.on(bucket)`` as blob triggers: bucket name -> handler, for the routes a blob
    trigger expresses (new and updated blobs of the bucket's container and prefix); the
    others are Event Grid subscriptions (:func:`declared_event_grid`)."""
    found: dict[str, Route] = {}
    for route in app.events:
        if isinstance(route.source, BucketHandle) and _blob_trigger_fits(route):
            found[route.source.resource_name] = route.handler
    return found


def _blob_trigger_fits(route: "EventRoute") -> bool:
    return route.events == ("created",) and not route.prefix


#: Event Grid's blob event types by the kind ``@app.on(bucket, events=...)`` names
_BLOB_EVENTS = {"created": "Microsoft.Storage.BlobCreated", "deleted": "Microsoft.Storage.BlobDeleted"}


def declared_event_grid(app: "App") -> dict[str, "EventRoute"]:
    """``@app.on`` routes delivered by an Event Grid subscription named after the route: a
    bucket's deletions or keys under a prefix (what a blob trigger cannot express), and every
    ``@app.on("pattern")`` (an outside source, wired to the subscription by its name)."""
    return {
        route.name: route
        for route in app.events
        if not isinstance(route.source, BucketHandle) or not _blob_trigger_fits(route)
    }


def blob_event_matches(route: "EventRoute", event: CloudEvent) -> bool:
    """Whether a blob event of an Event Grid subscription is for ``route``: its kind, and a
    blob of the bucket's container under the bucket's and the route's prefix."""
    if not isinstance(route.source, BucketHandle):
        return True
    if event.type not in {_BLOB_EVENTS[kind] for kind in route.events}:
        return False
    url = route.source.resolved_url()
    folder = url.path.strip("/")
    under = f"/blobServices/default/containers/{url.host}/blobs/{folder + '/' if folder else ''}{route.prefix}"
    return (event.subject or "").startswith(under)


class OvercastFunctions:
    """Builds the ``FunctionApp`` of an Overcast app; see :func:`function_app`."""

    def __init__(
        self,
        app: "App",
        *,
        event_grid: Mapping[str, Route] | None = None,
        blobs: Mapping[str, Route] | None = None,
        connection: str = DEFAULT_CONNECTION,
        http_auth_level: Level = "anonymous",
        webhook_auth_level: Level = "function",
        base_path: str = "",
        lifespan: Literal["auto", "on", "off"] = "auto",
    ) -> None:
        self.app = app
        self.router = Router(app, owner="function_app", option="")
        self.connection = connection
        self.http_auth_level = _auth_level(http_auth_level)
        self.webhook_auth_level = _auth_level(webhook_auth_level)
        # Event Grid subscriptions given here win over the app's @app.on routes of the same name
        self._declared_events = {n: r for n, r in declared_event_grid(app).items() if n not in (event_grid or {})}
        grid: dict[str, Route] = {name: route.handler for name, route in self._declared_events.items()}
        self.event_grid = {
            self._check_name("event_grid", name): self._target(name, to)
            for name, to in {**grid, **(event_grid or {})}.items()
        }
        # who may post to /eventgrid/{name}: said once at start-up, checked on each request
        self.webhook_auth = WebhookAuth(app, self.webhook_auth_level.value.lower()) if self.event_grid else None
        self._blob_connections: dict[str, str] = {}
        self._bucket_prefixes: dict[str, str] = {}
        blobs = {**declared_blobs(app), **(blobs or {})}  # blobs given here win over @app.on(bucket)
        self.blobs = {self._blob_path(key): self._target(key, to) for key, to in (blobs or {}).items()}
        self._blob_names = {
            self._blob_path(key): function_name("blob", *re.findall(r"[A-Za-z0-9]+", key.split("{")[0]))
            for key in blobs or {}
        }
        self.max_dequeue_count = queue_max_attempts(app)
        self.http = AsgiHttpFunction(lambda: app.asgi, base_path=base_path, lifespan=lifespan)
        # the Functions host settles queue messages: a failed delivery is re-raised so it delivers again
        self._settled = PlatformSettled("memory://azure-functions-host", name="azure-functions-host")

    # -- declarations -----------------------------------------------------------------------

    def _check_name(self, what: str, name: str) -> str:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,99}", name):
            raise ConfigError(
                f"function_app {what}: {name!r} must start with a letter and hold only letters, digits, '-' and '_'"
            )
        return name

    def _target(self, key: str, to: Route) -> Target:
        return self.router.target(to, key=key)

    def _blob_path(self, key: str) -> str:
        handle = self.app.resources.get(key)
        if isinstance(handle, BucketHandle):
            path = blob_path(handle)
            folder = handle.resolved_url().path.strip("/")
            self._bucket_prefixes[path] = f"{folder}/" if folder else ""
            named = handle.resolved_url().option("connection_env")
            if named:
                self._blob_connections[path] = named
            return path
        if "/" not in key or key.startswith("/"):
            raise ConfigError(
                f"function_app blobs: {key!r} is neither a bucket of {self.app.name!r} nor a blob path "
                "like 'container/{name}'"
            )
        return key if "{" in key else key.rstrip("/") + "/{name}"

    # -- the FunctionApp ----------------------------------------------------------------------

    def build(self) -> func.FunctionApp:
        fa = func.FunctionApp(http_auth_level=self.http_auth_level)
        fa.overcast = self  # type: ignore[attr-defined]
        self._add_http(fa)
        for sub in self.app.subscriptions:
            self._add_subscription(fa, sub)
        for job in self.app.schedules:
            self._add_schedule(fa, job)
        if self.event_grid:
            self._add_webhook(fa)
            for name in self.event_grid:
                self._add_event_grid(fa, name)
        for path in self.blobs:
            self._add_blob(fa, path)
        return fa

    def _add_http(self, fa: func.FunctionApp) -> None:
        if self.app.http_app is None:
            return
        adapter = self.http

        async def http(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
            if telemetry_runtime.active():
                with invocation(handler="http", request=_invocation_id(context)):
                    return await adapter(req, context)
            token = request_id.set(_invocation_id(context))  # the warm path: only the log lines' id
            try:
                return await adapter(req, context)
            finally:
                request_id.reset(token)

        fa.function_name("http")(
            fa.route(route="{*route}", methods=list(func.HttpMethod), auth_level=self.http_auth_level)(http)
        )

    def _add_subscription(self, fa: func.FunctionApp, sub: "Subscription") -> None:
        queue_name = self.queue_name(sub)
        outer = self

        async def run(msg: func.QueueMessage, context: func.Context) -> None:
            with _request(context):  # deliver() counts the invocation
                await outer.on_queue_message(sub, msg)

        source = sub.source
        name = (
            function_name("queue", source.resource_name)
            if isinstance(source, QueueHandle)
            else function_name("topic", source.resource_name, sub.name)
        )
        connection = sub.source.resolved_url().option("connection_env") or self.connection
        fa.function_name(name)(fa.queue_trigger(arg_name="msg", queue_name=queue_name, connection=connection)(run))

    def _add_schedule(self, fa: func.FunctionApp, job: "ScheduledJob") -> None:
        schedule, years = ncrontab(job.schedule)
        outer = self

        async def run(timer: func.TimerRequest) -> None:
            await outer.on_timer(job, timer, years)

        fa.function_name(function_name("schedule", job.name))(
            fa.timer_trigger(arg_name="timer", schedule=schedule, run_on_startup=False, use_monitor=True)(run)
        )

    def _add_event_grid(self, fa: func.FunctionApp, name: str) -> None:
        outer = self

        async def run(event: func.EventGridEvent, context: func.Context) -> None:
            with invocation(handler=f"eventgrid/{name}", request=_invocation_id(context)):
                await outer.on_event_grid(name, event)

        fa.function_name(function_name("eventgrid", name))(fa.event_grid_trigger(arg_name="event")(run))

    def _add_webhook(self, fa: func.FunctionApp) -> None:
        outer = self

        async def webhook(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
            with invocation(handler="eventgrid", request=_invocation_id(context)):
                return await outer.on_webhook(req)

        fa.function_name("eventgrid")(
            fa.route(route="eventgrid/{name}", methods=["POST", "OPTIONS"], auth_level=self.webhook_auth_level)(webhook)
        )

    def _add_blob(self, fa: func.FunctionApp, path: str) -> None:
        outer = self

        async def run(blob: func.InputStream, context: func.Context) -> None:
            with invocation(handler=f"blob/{path}", request=_invocation_id(context)):
                await outer.on_blob(path, blob)

        trigger = fa.blob_trigger(
            arg_name="blob", path=path, connection=self._blob_connections.get(path, self.connection)
        )
        fa.function_name(self._blob_names[path])(trigger(run))

    # -- names on Azure -------------------------------------------------------------------------

    def queue_name(self, sub: "Subscription") -> str:
        """The Storage queue a subscription's trigger reads: the queue's, or the topic's queue for it."""
        source = sub.source
        url = source.resolved_url()
        if url.scheme != "azqueue":
            raise ConfigError(
                f"{self.app.name}: subscription {sub.name!r} consumes {source.kind} {source.resource_name!r} on "
                f"{url}; Azure Functions triggers read Storage Queues, so give it an azqueue:// URL on this target"
            )
        if isinstance(source, QueueHandle):
            return url.host
        assert isinstance(source, TopicHandle)
        from .queues import subscription_queue_name

        return subscription_queue_name(url.host, sub.name)

    # -- invocations ------------------------------------------------------------------------------

    async def on_queue_message(self, sub: "Subscription", msg: func.QueueMessage) -> None:
        """Deliver one Storage Queue message; raise so the host retries when the handler failed."""
        body, attributes, message_id = decode_queue_message(msg.get_body())
        message = Message(
            message_id or msg.id or "",
            body,
            attributes,
            int(msg.dequeue_count or 1),
            msg.pop_receipt or msg.id or "host",
        )
        delivery = await deliver(
            sub, self._settled, message, app=self.app.name, max_attempts=sub.max_attempts, original=msg
        )
        if delivery.error is None:
            return
        # A subscription allowing fewer attempts than the host's maxDequeueCount sets the
        # message aside itself on its last one, as the host would, and lets the host delete it.
        if (
            delivery.outcome == "dead-letter"
            and message.attempts < self.max_dequeue_count
            and await self._dead_letter(sub, message, msg.get_body())
        ):
            return
        raise delivery.error

    async def _dead_letter(self, sub: "Subscription", message: Message, raw: bytes) -> bool:
        """Move a message to its queue's dead letters as it came (the provider's envelope and id kept)."""
        source = sub.source
        try:
            queue = source.subscription(sub.name) if isinstance(source, TopicHandle) else source
            poison = queue.dead_letters()
            try:
                await _send_dead(poison, message, raw)
            except NotFound:  # the host creates poison queues on first use; so do we
                await poison.create()
                await _send_dead(poison, message, raw)
        except (NotImplementedError, ConfigError, MissingDependency, ImportError) as exc:
            log.warning("%s: cannot move message %s to dead letters: %r", sub.name, message.id, exc)
            return False
        log.warning("%s: message %s moved to dead letters after %d attempts", sub.name, message.id, message.attempts)
        return True

    async def on_timer(self, job: "ScheduledJob", timer: func.TimerRequest | None, years: str | None) -> None:
        """Fire one schedule (skipped in years the expression excludes); raise if the handler failed."""
        now = datetime.now(UTC)
        if years is not None and not year_matches(years, now.year):
            return
        delivery = await run_schedule(job, app=self.app.name, at=now)
        if delivery.error is not None:
            raise delivery.error

    async def on_event_grid(self, name: str, event: Any) -> None:
        """One event from an Event Grid trigger (either schema)."""
        await self._run_grid(name, self.event_grid[name], eventgrid.from_function_event(event))

    async def _run_grid(self, name: str, target: Target, event: CloudEvent) -> None:
        """Run an Event Grid event; one of another kind, container or prefix than the
        ``@app.on(bucket)`` route the subscription is named after is acknowledged unrun."""
        route = self._declared_events.get(name)
        if route is not None and not blob_event_matches(route, event):
            log.info("eventgrid/%s: %s %s is not for @app.on(%s); skipped", name, event.type, event.subject, name)
            return
        await self._run(target, event)

    async def on_blob(self, path: str, blob: func.InputStream) -> None:
        await self._run(self.blobs[path], blob_event(blob, key_prefix=self._bucket_prefixes.get(path)))

    async def on_webhook(self, req: func.HttpRequest) -> func.HttpResponse:
        """An Event Grid webhook delivery: a handshake answered, or every event delivered (500 if one failed)."""
        headers = {name.lower(): value for name, value in req.headers.items()}
        body = req.get_body() or b""
        reply = eventgrid.handshake(req.method, headers, body)
        refused = self.webhook_auth.refusal(headers, handshake=reply is not None) if self.webhook_auth else None
        if refused is not None:
            log.warning("eventgrid: refused %s %s: %s", req.method, req.url.split("?")[0], refused[1])
            return _text(*refused)
        if reply is not None:
            payload = b"" if reply.body is None else json.dumps(reply.body).encode()
            return func.HttpResponse(
                payload, status_code=reply.status, headers=reply.headers, mimetype=reply.headers.get("content-type")
            )
        name = req.route_params.get("name", "")
        target = self.event_grid.get(name)
        if target is None:
            return _text(404, f"no Event Grid subscription named {name!r}")
        try:
            events = eventgrid.parse_delivery(headers, body)
        except Exception as exc:
            log.warning("eventgrid/%s: bad delivery: %s", name, exc)
            return _text(400, str(exc))
        results = await asyncio.gather(
            *(self._run_grid(name, target, event) for event in events), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            return _text(500, f"{len(failed)} of {len(events)} events failed")
        return func.HttpResponse(b"", status_code=200)

    async def _run(self, target: Target, event: CloudEvent) -> None:
        """Run a routed event; raise what its handler raised, so the host or Event Grid retries."""
        delivery = await run_event(target, event)
        if delivery.error is not None:
            raise delivery.error


async def _send_dead(poison: Queue, message: Message, raw: bytes) -> None:
    send_text = getattr(poison, "_send_text", None)
    if send_text is not None:  # the azqueue provider: the text as it was, its id and attributes kept
        await asyncio.to_thread(send_text, raw.decode("utf-8", "replace"), 0.0)
    else:
        await poison.send(message.body, attributes=message.attributes or None)


def _invocation_id(context: Any) -> str | None:
    value = getattr(context, "invocation_id", None)
    return str(value) if value else None


@contextlib.contextmanager
def _request(context: Any) -> Iterator[None]:
    """The invocation id on the log lines, without counting (dispatch counts deliveries)."""
    token = request_id.set(_invocation_id(context))
    try:
        yield
    finally:
        request_id.reset(token)


def _auth_level(level: str) -> func.AuthLevel:
    try:
        return func.AuthLevel(str(level).lower())
    except ValueError:
        raise ConfigError(f"function_app: auth level {level!r} is not anonymous, function or admin") from None


def _text(status: int, text: str) -> func.HttpResponse:
    # the text may quote what was sent (lone surrogates and all): encoded here, never failing
    return func.HttpResponse(
        text.encode("utf-8", "replace"), status_code=status, mimetype="text/plain", charset="utf-8"
    )


def decode_queue_message(raw: bytes) -> tuple[Any, dict[str, str], str | None]:
    """A Storage Queue message as the ``azqueue://`` provider wrote it: (body, attributes, message id).

    The provider's own decoder is used when it has one; otherwise the text is JSON (or
    base64 of JSON, if the host was told not to decode), and anything else is its text.
    """
    try:
        decode_message = getattr(importlib.import_module(f"{__package__}.queues"), "decode_message", None)
    except ImportError:
        decode_message = None
    if decode_message is not None:
        decoded: tuple[Any, dict[str, str], str | None] = decode_message(raw)
        return decoded
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text), {}, None
    except ValueError:
        pass
    import base64
    import binascii

    try:
        return json.loads(base64.b64decode(text, validate=True)), {}, None
    except (ValueError, binascii.Error):
        return text, {}, None


def blob_event(blob: Any, *, key_prefix: str | None = None) -> CloudEvent:
    """A blob trigger's ``func.InputStream`` as a ``Microsoft.Storage.BlobCreated`` CloudEvent.

    ``subject`` is Event Grid's (``/blobServices/default/containers/C/blobs/P``), ``source``
    the container's URL; ``data`` holds Event Grid's fields for the blob (the content stays
    in ``original``, the stream), and for a bucket's blob its Overcast ``key`` (the blob
    name under the bucket's prefix, as the ``azblob://`` provider encodes it).
    """
    name = str(blob.name or "")
    container, _, path = name.partition("/")
    props = dict(blob.blob_properties or {})
    uri = str(blob.uri or "")
    base = uri[: len(uri) - len(path) - 1] if path and uri.endswith("/" + path) else uri.rsplit("/", 1)[0]
    etag = str(props.get("ETag") or props.get("Etag") or props.get("eTag") or "").strip('"')
    data = {
        "api": "PutBlob",
        "url": uri or None,
        "name": path,
        "container": container,
        "contentType": props.get("ContentType"),
        "contentLength": blob.length,
        "eTag": etag or None,
        "blobType": props.get("BlobType"),
        "metadata": dict(blob.metadata or {}),
    }
    if key_prefix is not None and path.startswith(key_prefix):
        from .blob import decode_name

        data["key"] = decode_name(path[len(key_prefix) :])
    moment = props.get("LastModified") or props.get("Created")
    return CloudEvent(
        type="Microsoft.Storage.BlobCreated",
        source=base or f"/blobServices/default/containers/{container}",
        id=f"{name}@{etag}" if etag else name,
        data={k: v for k, v in data.items() if v is not None},
        time=eventgrid._time(moment) or datetime.now(UTC),
        subject=f"/blobServices/default/containers/{container}/blobs/{path}",
        original=blob,
    ).checked()
