"""Deferred processing: non-critical work waits out its dependency's outage in a backlog.

A ``critical=False`` subscription whose handler raises ``Unavailable``, ``Throttled`` or a
timeout (or whose breaker is open, so it is not even called) has the delivery's CloudEvent
parked in its backlog and the delivery acknowledged: the platform's attempts are not
spent. :func:`subscription_replayer` replays the backlog once the dependency answers again
(see :mod:`overcast.resilience.backlog`). A :class:`Deferrable` function runs at once while
its dependency answers, and is recorded in its backlog with a :class:`Receipt` while not.

Backlogs are queues of the app, named after what they serve (:func:`backlog_name`) and
resolved like any queue of the target (``queue.NAME``, else ``defaults.queue``, else the
embedded default), so they live with the app's other queues.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import logging
import math
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, InvalidArgument, Unavailable
from ..resilience.backlog import BACKLOG_SUFFIX, QUEUE_MAX_ATTEMPTS, Backlog, BacklogStats, Lease, Replayer
from ..resilience.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, breaker_for, breaker_named, counts_as_down
from ..resources.queue import Message, Queue
from ..resources.records import record, replace
from .cloudevent import CloudEvent

if TYPE_CHECKING:
    from ..app import Subscription

__all__ = [
    "BACKLOG_STATE",
    "REPLAY_EVERY",
    "REPLAY_SCHEDULE",
    "Deferrable",
    "Deferral",
    "Receipt",
    "app_backlogs",
    "app_replayers",
    "backlog_names",
    "drain_backlogs",
    "backlog_name",
    "event_from_work",
    "event_work",
    "open_backlog",
    "replay_budget",
    "subscription_deferral",
    "subscription_replayer",
]

log = logging.getLogger("overcast.deferred")

_MAX_NAME = 63
#: the internal schedule replaying every backlog where no process stays up, and how often it fires
REPLAY_SCHEDULE = "overcast-replay"
REPLAY_EVERY = "rate(1 minute)"
#: the key-value store of the replayers' leases (one record per backlog), declared with the backlogs
BACKLOG_STATE = "overcast-backlogs"


def replay_budget(function_timeout: float) -> float:
    """Seconds one firing of the replay schedule may replay: well inside the function's
    timeout (a fifth of it, at least 5 s, kept back) and the schedule's minute."""
    return max(1.0, min(function_timeout * 0.8, function_timeout - 5.0, 50.0))


def backlog_name(resource: str, subscription: str | None = None) -> str:
    """The backlog queue of queue ``resource``'s consumer (``jobs-deferred``), of topic
    ``resource``'s subscription (``signups-send_welcome-deferred``), or of a deferrable
    function (``resource`` is its name); shortened with a hash past 63 characters."""
    base = resource if subscription is None else f"{resource}-{subscription}"
    if len(base) + len(BACKLOG_SUFFIX) <= _MAX_NAME:
        return base + BACKLOG_SUFFIX
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    return f"{base[: _MAX_NAME - len(BACKLOG_SUFFIX) - 9]}-{digest}{BACKLOG_SUFFIX}"


def open_backlog(app: Any, name: str) -> Queue:
    """The backlog queue ``name`` on ``app``'s target; it never dead-letters by itself (the
    app's declared backlog handle where it has one, see ``handles.BacklogQueueHandle``)."""
    from .. import telemetry

    declared = getattr(app, "resources", {}).get(name)
    if declared is not None and hasattr(declared, "url_on"):
        return declared  # type: ignore[no-any-return]
    from ..resources.registry import open_resource

    url = app.url_for("queue", name)
    if url.option("max_attempts") is not None:
        return telemetry.timed(open_resource("queue", url, name=name))  # type: ignore[no-any-return]
    # the most deliveries the provider takes, else 0 where that means "never" (Pub/Sub, Azure)
    for limit in (str(QUEUE_MAX_ATTEMPTS), "0"):
        try:
            queue = open_resource("queue", replace(url, options={**url.options, "max_attempts": limit}), name=name)
        except ConfigError:
            continue
        return telemetry.timed(queue)  # type: ignore[no-any-return]
    return telemetry.timed(open_resource("queue", url, name=name))  # type: ignore[no-any-return]


class Deferral:
    """The deferral state of one non-critical target in this process: its breaker, the
    breakers of the resources it depends on, and (opened on first use) its backlog.

    Its own breaker opens at the first failure (``threshold=1``): the work was parked, so
    nothing is gained by calling again before the ``cooldown``."""

    def __init__(
        self,
        app: Any,
        label: str,
        name: str,
        *,
        depends_on: tuple[Any, ...] = (),
        threshold: int = 1,
        cooldown: float = 1.0,
    ) -> None:
        self.app = app
        self.label = label
        self.name = name
        self.depends_on = depends_on
        self.breaker: Breaker = breaker_named(f"deferred:{app.name}/{label}", threshold=threshold, cooldown=cooldown)
        self._backlog: Backlog | None = None
        self._needs: list[Breaker] | None = None

    @property
    def backlog(self) -> Backlog:
        found = self._backlog
        if found is None:
            ledger = getattr(self.app, "resources", {}).get(BACKLOG_STATE)  # the lease store
            found = self._backlog = Backlog(open_backlog(self.app, self.name), self.label, ledger=ledger)
        return found

    def dependency_breakers(self) -> list[Breaker]:
        """The breakers of ``depends_on`` (one per store URL, shared with every other user of it)."""
        found = self._needs
        if found is None:
            found = self._needs = [breaker_for(handle.resolved_url()) for handle in self.depends_on]
        return found

    def open(self) -> bool:
        """Whether its breaker, or that of a resource it depends on, is open: park at once."""
        own = self.breaker
        if own.opened_at is not None and own.state == OPEN:
            return True
        return bool(self.depends_on) and any(
            b.opened_at is not None and b.state == OPEN for b in self.dependency_breakers()
        )

    def state(self) -> str:
        """Its breaker's and its dependencies' states combined: open if one is, else half-open
        if one is (time for a probe), else closed."""
        states = {self.breaker.state, *(breaker.state for breaker in self.dependency_breakers())}
        return OPEN if OPEN in states else HALF_OPEN if HALF_OPEN in states else CLOSED

    def failed(self, exc: BaseException) -> None:
        """The work failed with its dependency down: count it, and against the resource it names."""
        self.breaker.failed(exc)
        named = getattr(exc, "resource", None)
        for handle, breaker in zip(self.depends_on, self.dependency_breakers(), strict=True):
            if named is not None and named == handle.resource_name:
                breaker.failed(exc)

    def succeeded(self) -> None:
        """A call succeeded; touches the breaker's lock only if it had seen failures."""
        breaker = self.breaker
        if breaker.failures or breaker.opened_at is not None:
            breaker.succeeded()

    async def probe(self) -> None:
        """``ping()`` every resource it depends on, feeding their breakers; raises if one is down."""
        for handle, breaker in zip(self.depends_on, self.dependency_breakers(), strict=True):
            if not breaker.allows():  # open, or another caller is probing it now
                raise Unavailable(f"{self.label}: {handle.resource_name} is down (its breaker is open)")
            try:
                await handle.ping()
            except Exception as exc:
                breaker.failed(exc)
                raise
            breaker.succeeded()

    def replayer(self, run: Any, **options: Any) -> Replayer:
        """A replayer of this backlog through ``run``, probing with ``ping()`` when it has dependencies."""
        if self.depends_on:
            options.setdefault("probe", self.probe)
            options.setdefault("state", self.state)
        if "lease" not in options:
            options["lease"] = self.lease(float(options.get("visibility", 300.0)))
        return Replayer(self.backlog, run, breaker=self.breaker, **options)

    def lease(self, ttl: float) -> Lease | None:
        """A lease on this backlog in the app's lease store, lasting an item's visibility timeout
        (a holder that dies frees it when the items it held come back); None without a store."""
        store = getattr(self.app, "resources", {}).get(BACKLOG_STATE)
        return None if store is None else Lease(store, f"lease-{self.name}", ttl=ttl)

    async def park(self, kind: str, work: dict[str, Any], reason: BaseException | None) -> str | None:
        """Park ``work``; the backlog item's id, or None (logged) when it could not be parked."""
        try:
            return await self.backlog.park(kind, work, reason)
        except Exception as exc:  # the backlog is down too, misconfigured or the item too big
            log.warning("%s: could not park work in backlog %s: %r", self.label, self.name, exc)
            return None


_deferrals: dict[int, tuple[Any, Deferral]] = {}


def subscription_deferral(subscription: Subscription, app: str) -> Deferral:
    """The process's deferral state of a non-critical subscription of app ``app`` (made on
    first use; a subscription belongs to one app, so it is found by identity alone)."""
    found = _deferrals.get(id(subscription))
    if found is not None and found[0] is subscription:
        return found[1]
    key = id(subscription)
    source = subscription.source
    topic = source.kind == "topic"
    label = f"{source.resource_name}/{subscription.name}" if topic else source.resource_name
    name = backlog_name(source.resource_name, subscription.name if topic else None)
    deferral = Deferral(source.app, label, name, depends_on=tuple(getattr(subscription, "depends_on", ())))
    _deferrals[key] = (subscription, deferral)
    return deferral


def event_work(event: CloudEvent, message: Message | None = None) -> dict[str, Any]:
    """What is parked of a delivery: the CloudEvent (structured JSON; binary data as
    ``data_base64``, as that format carries it: a Kinesis record's bytes) and the message's attributes."""
    fields = event.to_dict()
    if isinstance(event.data, (bytes, bytearray, memoryview)):
        del fields["data"]
        fields["data_base64"] = base64.b64encode(event.data).decode("ascii")
    work: dict[str, Any] = {"event": fields}
    if message is not None and message.attributes:
        work["attributes"] = dict(message.attributes)
    return work


def event_from_work(work: dict[str, Any], *, original: Any = None, replay: int | None = None) -> CloudEvent:
    """The CloudEvent parked in ``work``, as first delivered (id, time, source, data, attempts),
    with the extension ``replay`` (1 on the first replay) when given."""
    fields = dict(work["event"])
    core = {name: fields.pop(name, None) for name in ("type", "source", "id", "subject", "datacontenttype")}
    stamp = fields.pop("time", None)
    schema = fields.pop("dataschema", None)
    specversion = fields.pop("specversion", "1.0")
    data = fields.pop("data", None)
    if "data_base64" in fields:  # not an extension's name: those are lowercase letters and digits
        data = base64.b64decode(fields.pop("data_base64"))
    if replay is not None:
        fields["replay"] = replay
    return CloudEvent(
        type=core["type"],
        source=core["source"],
        data=data,
        id=core["id"],
        time=datetime.fromisoformat(stamp) if isinstance(stamp, str) else None,
        subject=core["subject"],
        datacontenttype=core["datacontenttype"],
        dataschema=schema,
        specversion=specversion,
        extensions=fields,
        original=original,
    )


def subscription_replayer(subscription: Subscription, *, app: str, **options: Any) -> Replayer:
    """The replayer of a non-critical subscription's backlog: each item's CloudEvent goes to
    its handler (options: those of :class:`~overcast.resilience.backlog.Replayer`)."""
    from .dispatch import call_handler

    deferral = subscription_deferral(subscription, app)

    async def run(body: dict[str, Any], replay: int) -> None:
        if body.get("kind") != "event":
            raise InvalidArgument(f"{deferral.label}: backlog item of kind {body.get('kind')!r} is not an event")
        event = event_from_work(body["work"], original=body, replay=replay)
        await call_handler(subscription.handler, event)

    return deferral.replayer(run, **options)


def backlog_names(app: Any) -> dict[str, str]:
    """The backlog queue each non-critical subscription and deferrable function of ``app``
    parks in, by what it serves, without opening anything: what a deployment plan declares."""
    found: dict[str, str] = {}
    for sub in app.subscriptions:
        if not sub.critical:
            topic = sub.source.kind == "topic"
            label = f"{sub.source.resource_name}/{sub.name}" if topic else sub.source.resource_name
            found[label] = backlog_name(sub.source.resource_name, sub.name if topic else None)
    for name in app.deferrables:
        found[name] = backlog_name(name)
    return found


def app_backlogs(app: Any) -> dict[str, Backlog]:
    """Every backlog of ``app`` by what it serves (``topic/subscription``, ``queue``, or a
    deferrable function's name): what ``overcast backlog`` shows and re-drives."""
    found: dict[str, Backlog] = {}
    for sub in app.subscriptions:
        if not sub.critical:
            deferral = subscription_deferral(sub, app.name)
            found[deferral.label] = deferral.backlog
    for func in app.deferrables.values():
        found[func.name] = func.deferral.backlog
    return found


def app_replayers(app: Any, **options: Any) -> dict[str, Replayer]:
    """A replayer per backlog of ``app`` (options: those of :class:`Replayer`); each backlog's
    queue is watched by telemetry (``overcast.queue.backlog``, its depth)."""
    from .. import telemetry

    found: dict[str, Replayer] = {}
    for sub in app.subscriptions:
        if not sub.critical:
            replayer = subscription_replayer(sub, app=app.name, **options)
            found[replayer.backlog.target] = replayer
    for func in app.deferrables.values():
        found[func.name] = func.replayer(**options)
    telemetry.watch_backlog(*(replayer.backlog.queue for replayer in found.values()))
    for replayer in found.values():
        backlog = replayer.backlog
        telemetry.watch_age(backlog.target, lambda backlog=backlog: backlog.oldest_parked_at)  # type: ignore[misc]
    return found


async def drain_backlogs(app: Any, *, timeout: float = 30.0, **options: Any) -> dict[str, BacklogStats]:
    """Replay every backlog of ``app`` whose dependency answers, until each is empty or
    ``timeout`` seconds pass: what a scheduled handler calls where no process stays up
    (Lambda, Cloud Run, Functions); ``overcast dev``/``run`` replay continuously instead."""
    import asyncio

    replayers = app_replayers(app, **{"wait": 0.0, **options})
    results = await asyncio.gather(*(r.drain(timeout=timeout) for r in replayers.values()))
    return dict(zip(replayers, results, strict=True))


# -- deferrable calls -------------------------------------------------------------------------

_SCALARS = frozenset({str, int, float, bool, type(None)})


async def call_in_thread(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A blocking function off the event loop (an awaitable it returns is awaited)."""
    import asyncio

    result = await asyncio.to_thread(func, *args, **kwargs)
    return await result if inspect.isawaitable(result) else result


@record(frozen=True)
class Receipt:
    """What a deferred call returns at once: the call was recorded and runs later.

    Attributes:
        id: the backlog item's id.
        function: the deferrable function's name.
        backlog: the backlog queue's name.
        reason: why it was deferred (the error, or that the breaker was open).
    """

    id: str
    function: str
    backlog: str
    reason: str


class Deferrable:
    """A named non-critical function of JSON arguments (``@app.deferrable``).

    Calling it (always awaited) checks every argument is JSON-serializable, then runs the
    function if its dependency answers and returns its result; while the dependency is
    down (the function raised ``Unavailable``, ``Throttled`` or a timeout, or its breaker
    is open) the call is recorded in the backlog and a :class:`Receipt` returned at once.
    """

    def __init__(self, app: Any, name: str, func: Callable[..., Any], *, depends_on: tuple[Any, ...] = ()) -> None:
        self.app = app
        self.name = name
        self.func = func
        self.signature = inspect.signature(func)
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        self._positional = [p.name for p in self.signature.parameters.values() if p.kind in kinds]
        self._is_async = inspect.iscoroutinefunction(func)
        self.deferral = Deferral(app, name, backlog_name(name), depends_on=depends_on)
        self.__name__ = name
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by parameter name (what is recorded when it is deferred)."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArgument(f"{self.name}: {exc}") from None
        return dict(bound.arguments)

    def check(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """InvalidArgument naming the first argument that is not JSON-serializable (scalars
        pass on their type alone: the healthy path stays cheap)."""
        for index, value in enumerate(args):
            if type(value) not in _SCALARS or (type(value) is float and not math.isfinite(value)):
                self._check_one(self._positional[index] if index < len(self._positional) else f"*args[{index}]", value)
        for key, value in kwargs.items():
            if type(value) not in _SCALARS or (type(value) is float and not math.isfinite(value)):
                self._check_one(key, value)

    def _check_one(self, param: str, value: Any) -> None:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(
                f"{self.name}: argument {param!r} is not JSON-serializable ({exc}); a deferrable call's "
                "arguments are recorded as JSON when it is deferred"
            ) from None

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.check(args, kwargs)
        deferral = self.deferral
        if deferral.open():
            receipt = await self._record(self.arguments(args, kwargs), None)
            if receipt is not None:
                return receipt
        try:
            if self._is_async:
                result = await self.func(*args, **kwargs)
            else:
                result = await call_in_thread(self.func, args, kwargs)
        except Exception as exc:
            if not counts_as_down(exc):
                raise
            deferral.failed(exc)
            receipt = await self._record(self.arguments(args, kwargs), exc)
            if receipt is None:
                raise
            return receipt
        deferral.succeeded()
        return result

    async def _run(self, arguments: dict[str, Any]) -> Any:
        """Run a recorded call (its arguments by parameter name)."""
        bound = self.signature.bind_partial()
        bound.arguments.update(arguments)
        if self._is_async:
            return await self.func(*bound.args, **bound.kwargs)
        return await call_in_thread(self.func, bound.args, bound.kwargs)

    async def _record(self, arguments: dict[str, Any], reason: BaseException | None) -> Receipt | None:
        item = await self.deferral.park("call", {"arguments": arguments}, reason)
        if item is None:
            return None
        why = "breaker open" if reason is None else f"{type(reason).__name__}: {reason}"
        log.info("%s: call deferred as %s in %s (%s)", self.name, item, self.deferral.name, why)
        return Receipt(item, self.name, self.deferral.name, why)

    def replayer(self, **options: Any) -> Replayer:
        """The replayer of this function's backlog: each recorded call runs with its arguments."""

        async def run(body: dict[str, Any], replay: int) -> None:
            if body.get("kind") != "call":
                raise InvalidArgument(f"{self.name}: backlog item of kind {body.get('kind')!r} is not a call")
            await self._run(dict(body["work"]["arguments"]))

        return self.deferral.replayer(run, **options)

    def __repr__(self) -> str:
        return f"<overcast deferrable {self.name!r}>"
