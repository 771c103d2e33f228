"""Where an inbound event goes: one router for every runtime.

A runtime's ``routes`` map a pattern (``fnmatch``, tried on the names the runtime gives
an event: an ARN, a queue name, a type, a source, a subject) or an exact key (an Event
Grid subscription, a blob path) to a *target*: the name of one of the app's
subscriptions or schedules, or a function taking a :class:`CloudEvent`. Each runtime
translates its payloads and decides which names to try; finding the target, the error
of a route naming nothing, and the error of an event nothing claims are here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..resources.records import record

if TYPE_CHECKING:
    from ..app import App, ScheduledJob, Subscription

__all__ = ["Handler", "Router", "Target", "UnroutedEvent", "subscription_target", "takes_event"]

Handler = Callable[..., Any]


class UnroutedEvent(ConfigError):
    """An event no subscription, schedule or route claims; the message says how to route it."""


def takes_event(handler: Handler) -> bool:
    """Whether ``handler`` wants the event: it has a positional parameter (or ``*args``).

    A schedule's handler may take nothing; every other handler takes the event.
    """
    try:
        params = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params)


@record(frozen=True)
class Target:
    """Where an event goes: a function, or one of the app's subscriptions or schedules.

    Attributes:
        name: the handler's name, for logs and counts.
        subscription: set when the target is a subscription of the app.
        job: set when the target is a schedule of the app (its handler may take no event).
    """

    name: str
    handler: Handler
    subscription: Subscription | None = None
    job: ScheduledJob | None = None

    @property
    def takes_event(self) -> bool:
        return self.job is None or takes_event(self.handler)


class Router:
    """The targets of one runtime's ``routes``, and the app's subscriptions and schedules by name.

    Args:
        app: the app whose handlers are the targets.
        routes: pattern (or key) -> a subscription or schedule name, or a function.
        owner: the runtime's entry point (``"lambda_handler"``), named in every error.
        option: its argument that holds the routes (``""``: several, each named by its caller).
    """

    def __init__(
        self, app: App, routes: Mapping[str, str | Handler] | None = None, *, owner: str, option: str = "routes"
    ) -> None:
        self.app = app
        self.owner = owner
        self._where = f"{owner} {option}" if option else owner
        self.routes: list[tuple[str, Target]] = [
            (pattern, self.target(to, key=pattern)) for pattern, to in (routes or {}).items()
        ]

    def target(self, to: str | Handler, *, key: str) -> Target:
        """The target ``to`` names; a :class:`ConfigError` naming ``key`` if it names nothing."""
        if callable(to):
            return Target(getattr(to, "__name__", repr(to)), to)
        found = self.named(to)
        if found is not None:
            return found
        names = [s.name for s in self.app.subscriptions] + [j.name for j in self.app.schedules]
        raise ConfigError(
            f"{self._where}: {key!r} -> {to!r} names no subscription or schedule of {self.app.name!r} "
            f"(there are: {', '.join(names) or 'none'})"
        )

    def named(self, name: str) -> Target | None:
        """The app's subscription or schedule called ``name``, as a target."""
        for sub in self.app.subscriptions:
            if sub.name == name:
                return subscription_target(sub)
        for job in self.app.schedules:
            if job.name == name:
                return Target(job.name, job.handler, job=job)
        return None

    def match(self, *names: str | None) -> Target | None:
        """The first route (in the order given) whose pattern matches one of ``names``."""
        for pattern, target in self.routes:
            for name in names:
                if name and isinstance(name, str) and fnmatchcase(name, pattern):
                    return target
        return None

    def by_key(self, key: str) -> Target | None:
        """The route whose pattern is exactly ``key``, or whose target is called ``key``."""
        for pattern, target in self.routes:
            if pattern == key or target.name == key:
                return target
        return None

    def unrouted(self, what: str, how: str) -> UnroutedEvent:
        """The error of an event nothing claims: ``what`` it is (its kind and source), ``how`` to route it."""
        return UnroutedEvent(f"{self.app.name}: {what}; {how}")

    def hint(self, key: str, to: str = "handler_name") -> str:
        """``add OWNER(app, routes={KEY: 'handler_name'})``: the route that would take an event."""
        return f"add {self.owner}(app, routes={{{key!r}: {to!r}}})"


def subscription_target(sub: Subscription) -> Target:
    return Target(sub.name, sub.handler, subscription=sub)
