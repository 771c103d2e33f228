"""The App: resource declarations, the HTTP app, subscriptions and schedules."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from . import telemetry
from .config import Config, check_resource_name, load_config
from .errors import ConfigError
from .handles import (
    BucketHandle,
    CacheHandle,
    KVHandle,
    QueueHandle,
    SecretHandle,
    TopicHandle,
)
from .resources.records import record
from .resources.url import ResourceURL

if TYPE_CHECKING:
    from pathlib import Path

    from .runtime.schedule import Schedule

__all__ = ["App", "EventRoute", "Schedule", "ScheduledJob", "Subscription"]

F = TypeVar("F", bound=Callable[..., Any])
Handler = Callable[..., Awaitable[Any] | Any]


#: deliveries before a message goes to the dead letters, unless a subscription says otherwise
DEFAULT_MAX_ATTEMPTS = 5
#: seconds a deployed function may run when ``[targets.T.function] timeout`` does not say
DEFAULT_FUNCTION_TIMEOUT = 30


@record(frozen=True)
class Subscription:
    """A handler bound to a queue or a topic.

    ``critical=False`` marks a feature that may wait out an outage: while its
    dependencies are down its events are parked and replayed later.
    """

    name: str
    source: QueueHandle | TopicHandle
    handler: Handler
    critical: bool = True
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    #: resources a non-critical handler needs: their breakers open, it is not called
    depends_on: tuple[Any, ...] = ()


@record(frozen=True)
class ScheduledJob:
    name: str
    schedule: Schedule
    handler: Handler


#: what ``@app.on(bucket, events=...)`` takes: objects created or deleted
BUCKET_EVENTS = ("created", "deleted")


@record(frozen=True)
class EventRoute:
    """A handler for events from a source that is not one of the app's queues or topics.

    ``source`` is a bucket of the app (its object events, filtered by ``prefix``) or a
    pattern naming an outside source (an ARN, a name, an event type: a runtime's ``routes``
    key). Declared, so a deployment plan can wire the source to the function.
    """

    name: str
    source: BucketHandle | str
    handler: Handler
    events: tuple[str, ...] = ()
    prefix: str = ""


class App:
    """A portable serverless application.

    Args:
        name: the application's name; deploy prefixes cloud resources with it.
        config: path to ``overcast.toml`` (or its folder); found upward from the
            file that creates the App, then from the working directory, by default.
    """

    def __init__(self, name: str, *, config: str | Path | None = None) -> None:
        check_resource_name("app", name)
        self.name = name
        self._config_path = _path(config) if config is not None else None
        self._config: Config | None = None
        self._origin = _caller_folder()
        self.resources: dict[str, Any] = {}
        self.subscriptions: list[Subscription] = []
        self._schedules: list[ScheduledJob] = []
        self._replication_checked = False
        self.events: list[EventRoute] = []
        self.deferrables: dict[str, Any] = {}
        self.http_app: Any = None
        self._asgi: Any = None
        self._observed_asgi: Any = None

    # -- configuration ----------------------------------------------------------------

    @property
    def config(self) -> Config:
        if self._config is None:
            if self._config_path is not None or os.environ.get("OVERCAST_CONFIG"):
                self._config = load_config(self._config_path)
            else:
                self._config = load_config(start=_path(self._origin))
                if self._config.path is None:
                    self._config = load_config()
        return self._config

    def use_config(self, config: Config | str | Path) -> None:
        """Switch to another configuration; opened resources are reopened on next use."""
        self._config = config if isinstance(config, Config) else load_config(config)
        self._schedules[:] = [job for job in self._schedules if job.handler != self._replicate_all]
        self._replication_checked = False
        self.reset()

    @property
    def schedules(self) -> list[ScheduledJob]:
        """The app's schedules, and the internal ones its configuration implies: where a target
        replicates one of the app's KV stores or buckets, ``overcast-replicate`` (every minute)
        ships the change logs where no process stays up (a deployed function), so a plan
        declares it and every runtime routes it. Read after the declarations (it reads the
        configuration once)."""
        if not self._replication_checked:
            from .resilience.spec import REPLICATE_EVERY, REPLICATE_SCHEDULE

            self._replication_checked = True
            if self._replicates() and not any(job.name == REPLICATE_SCHEDULE for job in self._schedules):
                from .runtime.schedule import parse_schedule

                job = ScheduledJob(REPLICATE_SCHEDULE, parse_schedule(REPLICATE_EVERY), self._replicate_all)
                self._schedules.append(job)
        return self._schedules

    def _replicates(self, target: str | None = None) -> bool:
        """Whether ``target`` (default: any target) replicates a declared KV store or bucket."""
        targets = self.config.targets.values() if target is None else [self.config.target(target)]
        for tgt in targets:
            for kind in ("kv", "bucket"):
                for name, url in tgt.resources.get(kind, {}).items():
                    if name in self.resources and url.startswith("replicated://"):
                        return True
        return False

    async def _replicate_all(self) -> None:
        """The internal replication schedule's handler: ship every replicated resource's change
        logs once, for at most a budget below the deployed function's timeout."""
        import asyncio

        from .config import function_settings
        from .runtime.deferral import replay_budget

        timeout = function_settings(self.config.target()).get("timeout", DEFAULT_FUNCTION_TIMEOUT)
        stores = [h for h in self.resources.values() if h.kind in ("kv", "bucket")]
        stores = [h for h in stores if h.resolved_url().scheme == "replicated"]
        async with asyncio.timeout(replay_budget(timeout)):
            for handle in stores:
                await handle.provider.replicate()

    @property
    def target(self) -> str:
        return self.config.target().name

    def url_for(self, kind: str, name: str) -> ResourceURL:
        return self.config.url_for(kind, name, app=self.name)

    def reset(self) -> None:
        """Close opened providers; the next use resolves them again (after a target change)."""
        for handle in self.resources.values():
            handle.reset()

    # -- declarations -----------------------------------------------------------------

    def _declare(self, kind: str, name: str, factory: Callable[[], Any]) -> Any:
        check_resource_name(kind, name)
        existing = self.resources.get(name)
        if existing is not None:
            raise ConfigError(
                f"{self.name}: two resources are named {name!r} ({existing.kind} and {kind}); names must be unique"
            )
        handle = factory()
        self.resources[name] = handle
        return handle

    def kv(self, name: str, *, allow: tuple[str, ...] = ("read", "write")) -> KVHandle:
        """Declare a key-value store of JSON documents."""
        handle: KVHandle = self._declare("kv", name, lambda: KVHandle(self, name, frozenset(allow)))
        return handle

    def bucket(self, name: str, *, allow: tuple[str, ...] = ("read", "write")) -> BucketHandle:
        """Declare an object bucket."""
        handle: BucketHandle = self._declare("bucket", name, lambda: BucketHandle(self, name, frozenset(allow)))
        return handle

    def queue(self, name: str, *, allow: tuple[str, ...] = ("read", "write")) -> QueueHandle:
        """Declare a queue."""
        handle: QueueHandle = self._declare("queue", name, lambda: QueueHandle(self, name, frozenset(allow)))
        return handle

    def topic(self, name: str, *, allow: tuple[str, ...] = ("read", "write")) -> TopicHandle:
        """Declare a topic (publish/subscribe fan-out)."""
        handle: TopicHandle = self._declare("topic", name, lambda: TopicHandle(self, name, frozenset(allow)))
        return handle

    def cache(self, name: str, *, allow: tuple[str, ...] = ("read", "write")) -> CacheHandle:
        """Declare a cache."""
        handle: CacheHandle = self._declare("cache", name, lambda: CacheHandle(self, name, frozenset(allow)))
        return handle

    def secret(self, name: str) -> SecretHandle:
        """Declare a secret (read only)."""
        handle: SecretHandle = self._declare("secret", name, lambda: SecretHandle(self, name))
        return handle

    def http(self, asgi_or_wsgi_app: Any) -> Any:
        """Serve this ASGI or WSGI app (FastAPI, Starlette, Flask, Django, ...); returns it."""
        if self.http_app is not None:
            raise ConfigError(f"{self.name}: app.http() was already given an app")
        if not callable(asgi_or_wsgi_app):
            raise ConfigError(f"{self.name}: app.http() takes an ASGI or WSGI app, got {asgi_or_wsgi_app!r}")
        self.http_app = asgi_or_wsgi_app
        self._asgi = self._observed_asgi = None
        return asgi_or_wsgi_app

    @property
    def plain_asgi(self) -> Any:
        """The HTTP app as ASGI without the telemetry middleware: what a cloud runtime that
        counts its invocations itself calls while nothing traces or summarizes requests."""
        if self._asgi is None:
            from .runtime.asgi import as_asgi
            from .runtime.health import HealthRoute

            self._asgi = HealthRoute(as_asgi(self.http_app, name=self.name), self.resources)
        return self._asgi

    @property
    def asgi(self) -> Any:
        """The HTTP app as ASGI (a WSGI app is adapted by a2wsgi); while telemetry is on,
        inside a middleware that traces and counts each request."""
        plain = self._asgi or self.plain_asgi
        if telemetry.enabled():
            if self._observed_asgi is None:
                from .telemetry.http import TelemetryMiddleware

                self._observed_asgi = TelemetryMiddleware(plain)
            return self._observed_asgi
        return plain

    def subscribe(
        self,
        source: QueueHandle | TopicHandle,
        *,
        critical: bool = True,
        name: str | None = None,
        max_attempts: int | None = None,
        depends_on: tuple[Any, ...] | list[Any] = (),
    ) -> Callable[[F], F]:
        """Run the decorated function for each message on ``source`` (a queue or topic handle).

        The handler takes one :class:`~overcast.CloudEvent`. Raising makes the
        message come back later; after ``max_attempts`` deliveries (default 5) it goes
        to the dead-letter queue. On a topic the limit is the subscription's; on a
        queue it becomes the queue's ``max_attempts`` option, so a queue URL that sets
        another value is an error. ``critical=False`` parks deliveries while the handler's
        dependency is down (see ``docs/resilience.md``); ``depends_on`` names the resources
        it needs, whose breakers it shares and which are pinged before a replay.
        """
        if not isinstance(source, (QueueHandle, TopicHandle)) or source.app is not self:
            raise ConfigError(f"{self.name}: subscribe() takes a queue or topic declared on this app, got {source!r}")
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
        ):
            raise ConfigError(f"{self.name}: max_attempts must be a positive int, got {max_attempts!r}")

        def decorate(func: F) -> F:
            sub_name = name or func.__name__
            check_resource_name("subscription", sub_name)
            if any(s.name == sub_name and s.source is source for s in self.subscriptions):
                raise ConfigError(f"{self.name}: {source.resource_name!r} already has a subscription {sub_name!r}")
            if isinstance(source, QueueHandle) and any(s.source is source for s in self.subscriptions):
                raise ConfigError(
                    f"{self.name}: queue {source.resource_name!r} already has a consumer; use a topic to fan out"
                )
            limit = max_attempts if max_attempts is not None else DEFAULT_MAX_ATTEMPTS
            if isinstance(source, QueueHandle) and max_attempts is not None:
                source.consumer_max_attempts = max_attempts
            needs = self._dependencies(depends_on)
            self.subscriptions.append(Subscription(sub_name, source, func, critical, limit, needs))
            if not critical:
                topic = isinstance(source, TopicHandle)
                self._declare_backlog(source.resource_name, sub_name if topic else None)
            return func

        return decorate

    def schedule(self, expression: str, *, name: str | None = None) -> Callable[[F], F]:
        """Run the decorated function on a schedule: ``rate(5 minutes)`` or ``cron(0 3 * * ? *)``."""
        from .runtime.schedule import parse_schedule  # only an app with schedules pays for it

        parsed = parse_schedule(expression)

        def decorate(func: F) -> F:
            job_name = name or func.__name__
            check_resource_name("schedule", job_name)
            if any(j.name == job_name for j in self._schedules):
                raise ConfigError(f"{self.name}: two schedules are named {job_name!r}")
            self._schedules.append(ScheduledJob(job_name, parsed, func))
            return func

        return decorate

    def on(
        self,
        source: BucketHandle | str,
        *,
        events: tuple[str, ...] = ("created",),
        prefix: str = "",
        name: str | None = None,
    ) -> Callable[[F], F]:
        """Run the decorated function (it takes a :class:`~overcast.CloudEvent`) for each event
        of ``source``: a bucket of this app (``events``: ``created``, ``deleted``; keys under
        ``prefix``), or a pattern naming an outside source (``"arn:aws:dynamodb:*:table/orders/*"``)."""
        if isinstance(source, BucketHandle):
            if source.app is not self:
                raise ConfigError(f"{self.name}: on() takes a bucket declared on this app, got {source!r}")
            bad = [e for e in events if e not in BUCKET_EVENTS]
            if bad or not events:
                raise ConfigError(
                    f"{self.name}: on({source.resource_name!r}) events must be some of {BUCKET_EVENTS}, got {events!r}"
                )
        elif not isinstance(source, str) or not source:
            raise ConfigError(f"{self.name}: on() takes a bucket of this app or a source pattern, got {source!r}")

        def decorate(func: F) -> F:
            route_name = name or func.__name__
            check_resource_name("event handler", route_name)
            if any(r.name == route_name for r in self.events):
                raise ConfigError(f"{self.name}: two event handlers are named {route_name!r}")
            kinds = tuple(events) if isinstance(source, BucketHandle) else ()
            self.events.append(EventRoute(route_name, source, func, kinds, prefix))
            return func

        return decorate

    def _dependencies(self, depends_on: tuple[Any, ...] | list[Any]) -> tuple[Any, ...]:
        for handle in depends_on:
            if getattr(handle, "app", None) is not self or not hasattr(handle, "ping"):
                raise ConfigError(f"{self.name}: depends_on takes resources declared on this app, got {handle!r}")
        return tuple(depends_on)

    def deferrable(
        self, func: Callable[..., Any] | None = None, *, name: str | None = None, depends_on: tuple[Any, ...] = ()
    ) -> Any:
        """Declare a non-critical function of JSON arguments (``@app.deferrable``).

        Awaiting a call runs it now and returns its result while its dependency answers;
        while it does not (the function raised ``Unavailable``, ``Throttled`` or a timeout,
        or its breaker is open) the call is recorded in the backlog ``NAME-deferred`` and a
        :class:`~overcast.runtime.deferral.Receipt` is returned at once; ``overcast dev`` /
        ``run`` replay it later. Arguments that are not JSON-serializable are refused.
        """

        def decorate(target: Callable[..., Any]) -> Any:
            from .runtime.deferral import Deferrable

            fn_name = name or target.__name__
            check_resource_name("deferrable", fn_name)
            if fn_name in self.deferrables:
                raise ConfigError(f"{self.name}: two deferrable functions are named {fn_name!r}")
            needs = self._dependencies(depends_on)
            found = self.deferrables[fn_name] = Deferrable(self, fn_name, target, depends_on=needs)
            self._declare_backlog(fn_name)
            return found

        return decorate if func is None else decorate(func)

    def _declare_backlog(self, resource: str, subscription: str | None = None) -> None:
        """Declare the backlog queue of non-critical work and, once, the store of the replayers'
        leases and the internal schedule that replays every backlog where no process stays up
        (a deployment plan sees them all)."""
        from .handles import ACCESS, BacklogQueueHandle, BacklogStateHandle
        from .runtime.deferral import BACKLOG_STATE, REPLAY_EVERY, REPLAY_SCHEDULE, backlog_name

        name = backlog_name(resource, subscription)
        self._declare("queue", name, lambda: BacklogQueueHandle(self, name, ACCESS))
        if BACKLOG_STATE not in self.resources:  # the replayers' leases
            self._declare("kv", BACKLOG_STATE, lambda: BacklogStateHandle(self, BACKLOG_STATE, ACCESS))
        if not any(job.name == REPLAY_SCHEDULE for job in self._schedules):
            from .runtime.schedule import parse_schedule

            self._schedules.append(ScheduledJob(REPLAY_SCHEDULE, parse_schedule(REPLAY_EVERY), self._replay_backlogs))

    async def _replay_backlogs(self) -> None:
        """The internal replay schedule's handler: every backlog whose dependency answers, for
        at most a budget below the deployed function's timeout (``[targets.T.function]``)."""
        from .config import function_settings
        from .runtime.deferral import drain_backlogs, replay_budget

        timeout = function_settings(self.config.target()).get("timeout", DEFAULT_FUNCTION_TIMEOUT)
        await drain_backlogs(self, timeout=replay_budget(timeout))

    # -- operations -------------------------------------------------------------------

    async def provision(self) -> list[tuple[str, str, str]]:
        """Create what backs every resource on the current target, idempotently.

        Returns (kind, name, url) for each resource, subscriptions included.
        """
        done: list[tuple[str, str, str]] = []
        for handle in self.resources.values():
            await handle.create()
            done.append((handle.kind, handle.resource_name, str(handle.resolved_url())))
        for sub in self.subscriptions:
            if isinstance(sub.source, TopicHandle):
                queue = sub.source.subscription(sub.name, max_attempts=sub.max_attempts)
                await queue.create()
                done.append(("subscription", f"{sub.source.resource_name}/{sub.name}", str(queue.location)))
        return done

    def __repr__(self) -> str:
        return f"<overcast.App {self.name!r}: {len(self.resources)} resources>"


def __getattr__(name: str) -> Any:
    if name == "Schedule":  # re-exported, imported when asked for
        from .runtime.schedule import Schedule

        return Schedule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _caller_folder() -> str:
    """The folder of the module that created the App, where overcast.toml usually sits (a
    string: pathlib is imported when the configuration is first read, not to declare)."""
    try:
        filename = sys._getframe(2).f_globals.get("__file__")
    except ValueError:  # called from the top of the stack
        filename = None
    return os.path.dirname(os.path.realpath(filename)) if filename else os.getcwd()


def _path(value: str | Path) -> Path:
    from pathlib import Path

    return Path(value)
