"""The local console of ``overcast dev``: the app's resources, data, events and schedules in a browser.

Served by the dev server itself under ``/_overcast/`` (Starlette, server-rendered Jinja2
templates and one small script of our own, nothing from a CDN), to this machine only
(:mod:`.guard`). ``overcast run`` never serves it. Needs the ``console`` extra.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from .events import EventLog

if TYPE_CHECKING:
    from ....app import App, Subscription
    from ....resources.queue import Queue
    from ....runtime.dispatch import Delivery

__all__ = ["PREFIX", "Console", "EventLog"]

PREFIX = "/_overcast"

Scope = MutableMapping[str, Any]


class Console:
    """The console of one App: its ASGI app (under :data:`PREFIX`) and the feed it shows.

    Args:
        app: the App served.
        report: where a run started from the console goes (the dev server prints it and
            feeds it back to :attr:`events`).
        subscription_queue: the queue a topic subscription consumes (the dev workers' own).
    """

    def __init__(
        self,
        app: App,
        *,
        report: Callable[[Delivery], None] | None = None,
        subscription_queue: Callable[[Subscription], Queue] | None = None,
    ) -> None:
        self.app = app
        self.events = EventLog()
        self.report = report or self.events.delivery
        self._subscription_queue = subscription_queue
        self._queues: dict[int, Queue] = {}
        self.asgi = self._build()

    def subscription_queue(self, subscription: Subscription) -> Queue:
        """The queue of a topic subscription, opened once."""
        queue = self._queues.get(id(subscription))
        if queue is None:
            if self._subscription_queue is not None:
                queue = self._subscription_queue(subscription)
            else:
                queue = subscription.source.subscription(subscription.name, max_attempts=subscription.max_attempts)  # type: ignore[union-attr]
            self._queues[id(subscription)] = queue
        return queue

    def follow_signals(self) -> Callable[[], None]:
        """Close the open feeds as soon as the server is told to stop (SIGINT, SIGTERM), so an
        open Events page holds up neither Ctrl-C nor a reload; returns what undoes it.

        Chains to the handlers already set (uvicorn's, set with ``signal.signal``)."""
        import asyncio
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        loop = asyncio.get_running_loop()
        previous: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old = signal.getsignal(sig)
            if not callable(old):
                continue  # default or ignored: not ours to wrap

            def closing(signum: int, frame: Any, old: Any = old) -> None:
                loop.call_soon_threadsafe(self.events.close_feeds)
                old(signum, frame)

            previous[sig] = old
            signal.signal(sig, closing)

        def undo() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return undo

    def _build(self) -> Any:
        from pathlib import Path

        from starlette.applications import Starlette
        from starlette.responses import RedirectResponse
        from starlette.routing import Mount, Route
        from starlette.staticfiles import StaticFiles

        from . import data, pages, queues, resilience
        from .guard import LocalOnly

        routes = [
            Route("/", pages.resources),
            Route("/resources", pages.resources),
            Route("/secrets", pages.secrets),
            Route("/events", pages.events),
            Route("/events/stream", pages.events_stream),
            Route("/events/{event_id}", queues.event_detail),
            Route("/events/{event_id}/replay", queues.replay, methods=["POST"]),
            Route("/latency", pages.latency),
            Route("/schedules", pages.schedules),
            Route("/schedules/{name}/run", pages.run_now, methods=["POST"]),
            Route("/kv/{name}", data.kv_list),
            Route("/kv/{name}/item", data.kv_item),
            Route("/kv/{name}/item", data.kv_save, methods=["POST"]),
            Route("/kv/{name}/delete", data.kv_delete, methods=["POST"]),
            Route("/bucket/{name}", data.bucket_list),
            Route("/bucket/{name}/object", data.bucket_object),
            Route("/bucket/{name}/object", data.bucket_upload, methods=["PUT"]),
            Route("/bucket/{name}/delete", data.bucket_delete, methods=["POST"]),
            Route("/queues", queues.queues),
            Route("/queues/redrive", queues.redrive, methods=["POST"]),
            Route("/queues/peek", queues.peek),
            Route("/backlog", resilience.backlog),
            Route("/backlog/redrive", resilience.backlog_redrive, methods=["POST"]),
            Route("/topic/{name}/publish", queues.publish, methods=["POST"]),
            Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
        ]
        site = Starlette(routes=[Route(PREFIX, lambda _: RedirectResponse(f"{PREFIX}/")), Mount(PREFIX, routes=routes)])
        site.state.console = self
        return LocalOnly(site)

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
    ) -> None:
        from .latency import console_call

        token = console_call.set(True)
        try:
            await self.asgi(scope, receive, send)
        finally:
            console_call.reset(token)
