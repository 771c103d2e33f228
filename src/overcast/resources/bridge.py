"""Crossing between async and sync code.

Handles are async first. Their synchronous face (``handle.sync``) calls a
provider's blocking hooks directly when it has them and otherwise runs the async
hook on one background event loop shared by the process (a portal), so a WSGI view
or a plain function can use any provider. Blocking SDK calls made from async code
go to a worker thread so they never stall the event loop.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, ParamSpec, TypeVar

# asyncio is imported where it is used, not here: it is a third of ``import overcast``'s cost,
# and declaring an App needs none of it.
if TYPE_CHECKING:
    import asyncio
    import concurrent.futures

T = TypeVar("T")
P = ParamSpec("P")

_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_lock = threading.Lock()


def _portal() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    import asyncio

    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="overcast-portal", daemon=True)
            thread.start()
            _loop, _thread = loop, thread
            atexit.register(_close_portal)
        return _loop


def _close_portal() -> None:
    global _loop
    loop = _loop
    if loop is not None and not loop.is_closed():

        def stop() -> None:  # background work (a replicator) is cancelled, not left pending
            import asyncio

            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_soon(loop.stop)

        loop.call_soon_threadsafe(stop)
    _loop = None


def run_sync(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to completion from synchronous code and return its result."""
    loop = _portal()
    if threading.current_thread() is _thread:
        raise RuntimeError("a synchronous Overcast call was made on the portal loop itself")

    async def wrap() -> T:
        return await awaitable

    import asyncio

    return asyncio.run_coroutine_threadsafe(wrap(), loop).result()


def submit(awaitable: Awaitable[T]) -> concurrent.futures.Future[T]:
    """Run ``awaitable`` in the background on the portal loop; its future, to cancel or wait on."""
    import asyncio

    async def wrap() -> T:
        return await awaitable

    return asyncio.run_coroutine_threadsafe(wrap(), _portal())


def iterate_sync(iterator: AsyncIterator[T]) -> Iterator[T]:
    """Iterate an async iterator from synchronous code, one step at a time."""
    while True:
        try:
            yield run_sync(iterator.__anext__())
        except StopAsyncIteration:
            return


async def offload(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking call in a worker thread, keeping the event loop free."""
    import asyncio

    return await asyncio.to_thread(func, *args, **kwargs)
