"""What ``overcast dev`` runs next to the HTTP app: subscribers and schedules, in-process.

A consumer task per subscription polls its queue (a topic subscription's queue, or
the queue itself) and hands each message to :func:`overcast.runtime.dispatch.deliver`,
so the clouds' rules hold: a message stays hidden for its visibility timeout, a
failure comes back after a backoff, and after ``max_attempts`` it goes to the dead
letters. A scheduler task per ``@app.schedule`` fires on :meth:`Schedule.next_after`.
Each delivery is printed. :class:`DevASGI` starts all of it on the ASGI lifespan, and
serves the local console under ``/_overcast/`` when ``overcast dev`` asks for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError, OvercastError
from ...handles import TopicHandle
from ...resilience.spec import REPLICATE_SCHEDULE
from ...resources.queue import Queue
from ...runtime.deferral import REPLAY_SCHEDULE
from ...runtime.dispatch import Delivery, backoff, deliver, run_schedule
from ...runtime.lifespan import Lifespan, LifespanFailure

if TYPE_CHECKING:
    from rich.console import Console

    from ...app import App, ScheduledJob, Subscription
    from ...telemetry.http import RequestSummary

__all__ = ["DevASGI", "DevWorkers", "create_dev_asgi", "dev_asgi", "print_delivery", "run_consumer", "run_scheduler"]

log = logging.getLogger("overcast.dev")

APP_ENV = "OVERCAST_APP"
APP_DIR_ENV = "OVERCAST_APP_DIR"
RETRY_ENV = "OVERCAST_DEV_RETRY_DELAY"
#: ``1``: serve the console (set by ``overcast dev`` for its reloading server process)
CONSOLE_ENV = "OVERCAST_DEV_CONSOLE"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
OnDelivery = Callable[[Delivery], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def run_scheduler(
    job: ScheduledJob,
    *,
    app: str,
    on_delivery: OnDelivery,
    now: Callable[[], datetime] = _utcnow,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    max_sleep: float = 60.0,
) -> None:
    """Fire ``job`` at each time its schedule gives, forever.

    Sleeps at most ``max_sleep`` at a time so a clock jump (a laptop waking up) is
    noticed; firings missed meanwhile are skipped, not caught up, as the clouds do.
    ``now`` and ``sleep`` are injectable so tests need not wait.
    """
    due = job.schedule.next_after(now())
    while True:
        left = (due - now()).total_seconds()
        if left > 0:
            await sleep(min(left, max_sleep))
            continue
        on_delivery(await run_schedule(job, app=app, at=due))
        due = job.schedule.next_after(due)
        current = now()
        if due <= current:
            due = job.schedule.next_after(current)


async def run_consumer(
    subscription: Subscription,
    queue: Queue,
    *,
    app: str,
    on_delivery: OnDelivery,
    max_attempts: int | None = None,
    visibility_timeout: float = 30.0,
    wait: float = 1.0,
    batch: int = 10,
    retry_delay: Callable[[int], float] = backoff,
) -> None:
    """Receive from ``queue`` and deliver to ``subscription``'s handler, forever."""
    pause = 0.5
    while True:
        try:
            messages = await queue.receive(max_messages=batch, visibility_timeout=visibility_timeout, wait=wait)
        except OvercastError as exc:
            log.warning("%s: receive failed: %s; retrying in %gs", queue.name, exc, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 30.0)
            continue
        pause = 0.5

        async def one(message: Any) -> None:
            try:
                delivery = await deliver(
                    subscription, queue, message, app=app, max_attempts=max_attempts, retry_delay=retry_delay
                )
            except OvercastError as exc:  # the ack or nack failed: the visibility timeout brings it back
                log.warning("%s: settling message %s failed: %s", queue.name, message.id, exc)
                return
            on_delivery(delivery)

        await asyncio.gather(*(one(m) for m in messages))


def print_delivery(console: Console) -> OnDelivery:
    """A delivery printer: one line per delivery with its resource, handler, id, attempt, outcome, duration."""
    from rich.markup import escape

    styles = {"ok": "green", "retry": "yellow", "dead-letter": "bold red", "failed": "red", "deferred": "magenta"}

    def show(d: Delivery) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        outcome = f"[{styles[d.outcome]}]{d.outcome}[/]"
        line = (
            f"[dim]{stamp}[/] [cyan]{escape(d.resource)}[/] → {escape(d.handler)} "
            f"[dim]id[/] {escape(d.event_id)} [dim]attempt[/] {d.attempt} {outcome} "
            f"[dim]{d.duration * 1000:.1f} ms[/]"
        )
        if d.error is not None:
            line += f" [red]{escape(type(d.error).__name__)}: {escape(str(d.error))}[/]"
        if d.retry_in is not None:
            line += f" [dim](again in {d.retry_in:g}s)[/]"
        if d.outcome == "deferred":
            why = "breaker open" if d.cause is None else f"{type(d.cause).__name__}: {d.cause}"
            line += f" [magenta]({escape(why)}; parked until it answers again)[/]"
        console.print(line, highlight=False, soft_wrap=True)
        if d.error is not None and d.attempt == 1:  # the traceback once; retries print one line each
            from rich.traceback import Traceback

            error = d.error
            console.print(Traceback.from_exception(type(error), error, _user_frames(error), extra_lines=1))

    return show


def _user_frames(error: BaseException) -> TracebackType | None:
    """The traceback from the handler's frame on, without the dispatch and thread-pool frames above it."""
    import concurrent.futures

    from ...runtime import dispatch

    plumbing = tuple(
        str(Path(module.__file__ or "").parent) if module is not dispatch else str(module.__file__)
        for module in (asyncio, concurrent.futures, dispatch)
    )
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename.startswith(plumbing):
        tb = tb.tb_next
    return tb


class DevWorkers:
    """The consumers and schedulers of one App, started and stopped together.

    What ``overcast dev`` and ``overcast run --with-workers`` run beside the HTTP app; a
    plain script runs them with ``async with DevWorkers(app): ...``.

    Args:
        on_delivery: called after each delivery (default: print it with Rich).
        provision: create every resource first (the embedded ones cost nothing).
        retry_delay: seconds before a failed message comes back, by attempt.
    """

    def __init__(
        self,
        app: App,
        *,
        on_delivery: OnDelivery | None = None,
        provision: bool = True,
        visibility_timeout: float = 30.0,
        wait: float = 1.0,
        retry_delay: Callable[[int], float] = backoff,
        now: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.app = app
        self.provision = provision
        self.visibility_timeout = visibility_timeout
        self.wait = wait
        self.retry_delay = retry_delay
        self.now = now
        self.sleep = sleep
        if on_delivery is None:
            from rich.console import Console

            on_delivery = print_delivery(Console(highlight=False))
            dispatch_log = logging.getLogger("overcast.dispatch")
            if not dispatch_log.handlers:  # the printed line says it already; keep logging's last resort quiet
                dispatch_log.addHandler(logging.NullHandler())
        self.on_delivery = on_delivery
        self.tasks: list[asyncio.Task[None]] = []
        self.queues: list[Queue] = []

    def queue_for(self, subscription: Subscription) -> Queue:
        """The queue a subscription consumes: its topic subscription's queue, or the queue itself."""
        source = subscription.source
        if isinstance(source, TopicHandle):
            return source.subscription(subscription.name, max_attempts=subscription.max_attempts)
        return source

    async def start(self) -> None:
        """Provision (if asked), then start a task per subscription and per schedule."""
        if self.tasks:
            return
        if self.provision and self.app.config.target().embedded:
            await self.app.provision()
        for sub in self.app.subscriptions:
            queue = self.queue_for(sub)
            await queue.create()
            self.queues.append(queue)
            limit = _max_attempts(queue, sub)
            self.tasks.append(
                asyncio.create_task(
                    run_consumer(
                        sub,
                        queue,
                        app=self.app.name,
                        on_delivery=self.on_delivery,
                        max_attempts=limit,
                        visibility_timeout=self.visibility_timeout,
                        wait=self.wait,
                        retry_delay=self.retry_delay,
                    ),
                    name=f"overcast consumer {sub.source.resource_name}/{sub.name}",
                )
            )
        for job in self.app.schedules:
            if job.name in (REPLAY_SCHEDULE, REPLICATE_SCHEDULE):
                continue  # the replayers below and each store's replicator run continuously instead
            self.tasks.append(
                asyncio.create_task(
                    run_scheduler(job, app=self.app.name, on_delivery=self.on_delivery, now=self.now, sleep=self.sleep),
                    name=f"overcast schedule {job.name}",
                )
            )
        self.tasks += start_replayers(self.app)
        for task in self.tasks:
            task.add_done_callback(_report_crash)
        log.info("started %d consumer(s) and %d schedule(s)", len(self.app.subscriptions), len(self.app.schedules))

    async def stop(self) -> None:
        """Cancel every task and wait for them; a delivery in flight comes back after its visibility timeout."""
        tasks, self.tasks = self.tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.queues = []

    async def __aenter__(self) -> DevWorkers:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def start_replayers(app: App, **options: Any) -> list[asyncio.Task[None]]:
    """A task per backlog of ``app`` (each non-critical subscription, each deferrable
    function) replaying it whenever its dependency answers (options: the Replayer's)."""
    from ...runtime.deferral import app_replayers

    return [
        asyncio.create_task(replayer.forever(), name=f"overcast replay {label}")
        for label, replayer in app_replayers(app, **options).items()
    ]


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: %r", task.get_name(), task.exception(), exc_info=task.exception())


def _max_attempts(queue: Queue, subscription: Subscription) -> int:
    provider: Any = queue
    target = getattr(queue, "_target", None)
    if callable(target):
        provider = target()
    limit = getattr(provider, "max_attempts", None)
    return limit if isinstance(limit, int) and limit > 0 else subscription.max_attempts


async def _no_http_app(scope: Scope, receive: Receive, send: Send) -> None:
    """What ``dev`` serves for an app of handlers only: 404 with a hint."""
    if scope["type"] != "http":
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})
        return
    body = b"this app has no HTTP app; call app.http(your_asgi_or_wsgi_app) to serve one\n"
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 404, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class DevASGI:
    """The app's ASGI callable with its workers started on lifespan startup and stopped on shutdown,
    and the console (if given) answering under ``/_overcast/``."""

    def __init__(self, app: App, workers: DevWorkers | None = None, console: Any = None) -> None:
        self.app = app
        self._inner: Any = None
        self.workers = workers or DevWorkers(app)
        self.console = console

    @property
    def inner(self) -> Any:
        """The app's ASGI callable, resolved on first use: after :func:`watch_requests` has
        turned telemetry on, so requests pass through its middleware."""
        if self._inner is None:
            self._inner = self.app.asgi if self.app.http_app is not None else _no_http_app
        return self._inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            if self.console is not None and _console_path(scope["path"]):
                await self.console(scope, receive, send)
                return
            await self.inner(scope, receive, send)
            return
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        inner = Lifespan(self.inner, mode="auto", state=scope.get("state"))
        failure: str | None = None
        try:
            await inner.startup()
            await self.workers.start()
        except LifespanFailure as exc:
            failure = exc.reason
        except Exception as exc:
            failure = f"{type(exc).__name__}: {exc}"
            await inner.shutdown()
        if failure is not None:
            await self.workers.stop()
            await send({"type": "lifespan.startup.failed", "message": failure})
            return
        undo = self.console.follow_signals() if self.console is not None else None
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        if undo is not None:
            undo()
        await self.workers.stop()
        await inner.shutdown()
        self.app.reset()
        await send({"type": "lifespan.shutdown.complete"})


def _console_path(path: str) -> bool:
    """The console's paths; ``/_overcast/health`` is the app's own, as on every runtime."""
    return path == "/_overcast" or (path.startswith("/_overcast/") and path != "/_overcast/health")


def create_dev_asgi() -> DevASGI:
    """Uvicorn factory for ``overcast dev``: the App named by ``OVERCAST_APP`` with its workers
    (and the console if ``OVERCAST_DEV_CONSOLE=1``)."""
    from ...loader import load_app

    spec = os.environ.get(APP_ENV) or None
    folder = os.environ.get(APP_DIR_ENV)
    app = load_app(spec, cwd=Path(folder) if folder else None)
    from rich.console import Console

    served = dev_asgi(app, console=os.environ.get(CONSOLE_ENV) == "1")
    watch_requests(app, Console(stderr=True), also=served.console.events.request if served.console else None)
    return served


def watch_requests(
    app: App, console: Console | None = None, *, also: Callable[[RequestSummary], None] | None = None
) -> None:
    """Print one line per request (method, path, status, time, and every upstream call with
    its time), hand it to ``also`` (the console's feed), and turn on OpenTelemetry too if
    the environment asks (``OTEL_*``)."""
    from ... import telemetry

    if telemetry.configure_from_env(target=app.target, cloud="local"):
        telemetry.watch_app(app)
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    printer = print_request(console)
    if also is None:
        telemetry.summarize_requests(printer)
        return
    record = also

    def both(summary: RequestSummary) -> None:
        printer(summary)
        record(summary)

    telemetry.summarize_requests(both)


def print_request(console: Console) -> Callable[[RequestSummary], None]:
    """A request printer for :func:`overcast.telemetry.summarize_requests`."""
    from rich.markup import escape

    def show(summary: RequestSummary) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        style = "green" if summary.status < 400 else ("yellow" if summary.status < 500 else "red")
        line = (
            f"[dim]{stamp}[/] [bold]{escape(summary.method)}[/] {escape(summary.path)} "
            f"[{style}]{summary.status}[/] [dim]{summary.seconds * 1000:.1f} ms[/]"
        )
        for upstream, operation, resource, outcome, seconds in summary.calls:
            mark = "" if outcome == "ok" else f" [yellow]{escape(outcome)}[/]"
            call = f"{escape(upstream)} {escape(operation)} {escape(resource)} {seconds * 1000:.2f} ms"
            line += f"\n    [dim]↳[/] {call}{mark}"
        console.print(line, highlight=False, soft_wrap=True)

    return show


def dev_asgi(app: App, *, provision: bool = True, console: bool = False) -> DevASGI:
    """``app`` served with its workers; ``OVERCAST_DEV_RETRY_DELAY`` sets the first retry's backoff (seconds).

    With ``console``, the local console answers under ``/_overcast/`` and sees every delivery
    and schedule run (and the requests :func:`watch_requests` hands it). ``overcast run``
    never asks for it."""
    raw = os.environ.get(RETRY_ENV) or "1"
    try:
        base = float(raw)
    except ValueError:
        raise ConfigError(f"{RETRY_ENV} must be a number of seconds, got {raw!r}") from None
    workers = DevWorkers(app, provision=provision, retry_delay=lambda attempt: backoff(attempt, base=base))
    if not console:
        return DevASGI(app, workers)
    from ... import telemetry
    from .console import Console as LocalConsole

    printer = workers.on_delivery
    served = LocalConsole(app, subscription_queue=workers.queue_for)
    telemetry.watch_calls(served.events.latency.call)
    telemetry.watch_replication(served.events.latency.lag)

    def report(delivery: Delivery) -> None:
        printer(delivery)
        served.events.delivery(delivery)

    workers.on_delivery = served.report = report
    return DevASGI(app, workers, served)
