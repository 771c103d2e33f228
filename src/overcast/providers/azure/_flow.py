"""One flow, two clients: how the Azure providers write each operation once for both faces.

An operation is a generator (a *flow*) that yields every SDK call it makes and receives the
call's result. It is handed the blocking SDK client or the ``.aio`` one: with the blocking
client a call has already run when it is yielded, and :func:`run` sends its result straight
back; with the ``.aio`` client it is an awaitable that :func:`arun` awaits on the loop. A failed
call is raised inside the flow at its call (blocking) or its yield (async), which is the same
``try`` block, so both faces share every request, condition and error-mapping decision.

What is not one call is yielded wrapped, for the runner to drive: :class:`All` (a pager read
to the end), :class:`NextPage` (a pager's next page, or None), :class:`Next` (an iterator's
next item, or None), :class:`Blocking` (a blocking call: made in place by :func:`run`, in a
worker thread by :func:`arun`). The pattern is the Firestore provider's (``gcp/firestore.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

from ...resources import bridge

__all__ = ["All", "Blocking", "Flow", "Next", "NextPage", "arun", "run"]

T = TypeVar("T")

Flow = Generator[Any, Any, T]


class All:
    """A pager (``ItemPaged`` or ``AsyncItemPaged``) to be read to the end: the runner sends a list."""

    __slots__ = ("source",)

    def __init__(self, source: Any) -> None:
        self.source = source


class NextPage:
    """The next page of a ``by_page()`` iterator, as a list; None after the last."""

    __slots__ = ("pager",)

    def __init__(self, pager: Any) -> None:
        self.pager = pager


class Next:
    """The next item of an iterator (sync or async, whichever the face holds); None at its end."""

    __slots__ = ("source",)

    def __init__(self, source: Any) -> None:
        self.source = source


class Blocking:
    """A call of a blocking client that the async face makes in a worker thread."""

    __slots__ = ("args", "func", "kwargs")

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.func, self.args, self.kwargs = func, args, kwargs


def _step(op: Any) -> Any:
    """What the blocking face sends back for ``op``."""
    kind = type(op)
    if kind is All:
        return list(op.source)
    if kind is NextPage:
        page = next(op.pager, None)
        return None if page is None else list(page)
    if kind is Next:
        return next(op.source, None)
    if kind is Blocking:
        return op.func(*op.args, **op.kwargs)
    return op  # a blocking SDK call: it has run


async def _astep(op: Any) -> Any:
    """What the async face sends back for ``op``."""
    kind = type(op)
    if kind is All:
        return [item async for item in op.source]
    if kind is NextPage:
        page = await anext(op.pager, None)
        return None if page is None else [item async for item in page]
    if kind is Next:
        source = op.source
        return await anext(source, None) if hasattr(source, "__anext__") else next(source, None)
    if kind is Blocking:
        return await bridge.offload(op.func, *op.args, **op.kwargs)
    return await op


def run(flow: Flow[T]) -> T:
    """Drive ``flow`` with a blocking client's calls."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            value, error = _step(op), None
        except Exception as exc:
            value, error = None, exc


async def arun(flow: Flow[T]) -> T:
    """Drive ``flow`` with an ``.aio`` client's calls, awaiting each on the running loop."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            value, error = await _astep(op), None
        except Exception as exc:
            value, error = None, exc
