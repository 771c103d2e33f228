"""The provider-neutral deployment model: what one app needs on one target.

Built from what the App declares (resources with their access, the HTTP app,
subscriptions, schedules, event handlers) and from the target's ``overcast.toml`` table
(each resource's provider URL, ``existing``, ``[targets.T.function]``). A cloud's renderer
(``Family.deploy``) turns it into infrastructure-as-code; nothing here knows a cloud.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import declared_allow, declared_arn, existing_resources, function_settings
from ..errors import ConfigError
from ..handles import BucketHandle, QueueHandle
from ..resources.records import replace
from ..resources.url import ResourceURL

if TYPE_CHECKING:
    from ..app import App
    from ..config import Target

__all__ = ["BucketEvents", "Deployment", "Function", "Resource", "Schedule", "Subscription", "build"]


@dataclass(frozen=True)
class Function:
    """The deployed function's settings (``[targets.T.function]``; a renderer checks the values)."""

    name: str
    memory: int = 512
    timeout: int = 30
    runtime: str = "python3.12"
    architecture: str = "arm64"
    http: str = "url"
    log_retention_days: int = 30
    concurrency: int | None = None
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Resource:
    """A declared resource on the target: its provider URL, the access the code declared,
    and whether it already exists (referenced, not created)."""

    kind: str
    name: str
    url: ResourceURL
    allow: frozenset[str]
    existing: bool = False
    #: the cloud's identifier when ``overcast.toml`` names the resource by it (``arn = ...``)
    arn: str | None = None
    #: the code itself moves messages to the queue's dead letters (a backlog's replayer does)
    writes_dead_letters: bool = False


@dataclass(frozen=True)
class Subscription:
    """A handler consuming a queue (the queue itself) or a topic (through its own queue)."""

    name: str
    source: Resource
    max_attempts: int


@dataclass(frozen=True)
class Schedule:
    name: str
    expression: str


@dataclass(frozen=True)
class BucketEvents:
    """``@app.on(bucket)``: object events of a bucket delivered to the function."""

    name: str
    bucket: Resource
    events: tuple[str, ...]
    prefix: str


@dataclass(frozen=True)
class Deployment:
    """Everything a plan needs, in declaration order (so a plan is deterministic)."""

    app: str
    target: str
    cloud: str
    region: str | None
    source_dir: Path
    function: Function
    http: bool
    resources: tuple[Resource, ...]
    subscriptions: tuple[Subscription, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    bucket_events: tuple[BucketEvents, ...] = ()
    routes: tuple[str, ...] = ()
    #: third-party packages Overcast's runtime imports for this app (beside the cloud's SDK)
    runtime_packages: tuple[str, ...] = ()


def build(app: App, target_name: str) -> Deployment:
    """The deployment of ``app`` on ``target_name``; a :class:`ConfigError` names what is missing."""
    config = app.config
    target = config.target(target_name)
    if target.embedded or not target.cloud:
        raise ConfigError(
            f"target {target.name!r} runs on no cloud, so there is nothing to deploy; "
            f'name its cloud in [targets.{target.name}] (cloud = "aws")'
        )
    existing = existing_resources(target)
    declared = {(h.kind, h.resource_name) for h in app.resources.values()}
    unknown = sorted(f"{k}.{n}" for k, n in existing - declared)
    if unknown:
        raise ConfigError(
            f"[targets.{target.name}] existing names {', '.join(unknown)}, which the app does not declare"
        )
    resources = tuple(_resource(app, handle, target, existing) for handle in app.resources.values())
    by_name = {r.name: r for r in resources}
    subscriptions = tuple(
        Subscription(sub.name, by_name[sub.source.resource_name], sub.max_attempts) for sub in app.subscriptions
    )
    from ..resilience.spec import REPLICATE_SCHEDULE

    schedules = tuple(
        Schedule(job.name, job.schedule.expression)
        for job in app.schedules
        if job.name != REPLICATE_SCHEDULE or app._replicates(target.name)  # only where it replicates
    )
    bucket_events = tuple(
        BucketEvents(route.name, by_name[route.source.resource_name], route.events, route.prefix)
        for route in app.events
        if isinstance(route.source, BucketHandle)
    )
    routes = tuple(route.source for route in app.events if isinstance(route.source, str))
    return Deployment(
        app=app.name,
        target=target.name,
        cloud=str(target.cloud),
        region=_text(target.options.get("region")),
        source_dir=config.base_dir,
        function=_function(app, target.options, function_settings(target)),
        http=app.http_app is not None,
        resources=resources,
        subscriptions=subscriptions,
        schedules=schedules,
        bucket_events=bucket_events,
        routes=routes,
        runtime_packages=_runtime_packages(app),
    )


def _resource(app: App, handle: Any, target: Target, existing: frozenset[tuple[str, str]]) -> Resource:
    """One resource on the target; its ``allow`` is the target's (``overcast.toml``) if it sets one,
    else the code's."""
    url_on = getattr(handle, "url_on", None)  # a handle that resolves itself (a backlog's queue)
    url = (
        url_on(target.name)
        if url_on is not None
        else app.config.url_for(handle.kind, handle.resource_name, app=app.name, target=target.name)
    )
    if isinstance(handle, QueueHandle) and handle.consumer_max_attempts is not None:
        given = url.option("max_attempts")
        wanted = str(handle.consumer_max_attempts)
        if given is not None and given != wanted:
            raise ConfigError(
                f"queue {handle.resource_name!r}: its URL sets max_attempts={given} but its subscriber asks "
                f"for max_attempts={wanted}; keep one"
            )
        url = replace(url, options={**url.options, "max_attempts": wanted})
    existing_one = (handle.kind, handle.resource_name) in existing
    allow = declared_allow(target, handle.kind, handle.resource_name)
    if allow is None or handle.kind == "secret":  # a secret is only ever read
        allow = frozenset(handle.allow)
    arn = declared_arn(target, handle.kind, handle.resource_name)
    writes = bool(getattr(handle, "writes_dead_letters", False))
    return Resource(handle.kind, handle.resource_name, url, allow, existing_one, arn, writes)


def _function(app: App, options: dict[str, Any], settings: dict[str, Any]) -> Function:
    environment = {str(k): str(v) for k, v in settings.pop("environment", {}).items()}
    reserved = sorted(k for k in environment if k.startswith("OVERCAST_") or k.startswith("AWS_"))
    if reserved:
        raise ConfigError(f"function environment sets {', '.join(reserved)}: deploy sets OVERCAST_* itself")
    return Function(name=settings.pop("name", app.name), environment=environment, **settings)


def _runtime_packages(app: App) -> tuple[str, ...]:
    """croniter parses a cron schedule when the app is imported; a2wsgi serves a WSGI app."""
    from ..runtime.asgi import is_asgi

    needed = []
    if any(job.schedule.cron is not None for job in app.schedules):
        needed.append("croniter")
    if app.http_app is not None and not is_asgi(app.http_app):
        needed.append("a2wsgi")
    return tuple(needed)


def _text(value: object) -> str | None:
    return None if value is None else str(value)
