"""What every resource has, whatever its kind: a name, a URL, capabilities, a life cycle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from . import bridge
from .url import ResourceURL

__all__ = ["Resource"]

T = TypeVar("T")


class Resource:
    """Base of every provider and wrapper.

    A provider implements its operations as private hooks, either ``async def _op``
    or blocking ``def _op_blocking``; the public methods validate arguments once and
    call them. Providers whose hooks block (SDK calls, file and SQLite I/O) set
    ``offload = True`` so async callers run them in a worker thread.

    Attributes:
        kind: ``kv``, ``bucket``, ``queue``, ``topic``, ``cache`` or ``secret``.
        capabilities: optional operations this provider supports; the conformance
            suite runs exactly these, and the others raise ``NotSupported``.
        name: the resource name used in errors (the declared name, else the URL).
        location: the provider URL it was opened from (a :class:`ResourceURL`;
            not ``url``, which is a method of blob stores that signs URLs).
    """

    kind: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    offload: ClassVar[bool] = True
    #: set by ``overcast.telemetry`` once turned on, to time the hooks of providers defined later
    _instrument_subclass: ClassVar[Callable[[type], None] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        instrument = Resource._instrument_subclass
        if instrument is not None:
            instrument(cls)

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        if isinstance(url, str):
            url = ResourceURL.parse(url)
        self.location: ResourceURL = url if url is not None else ResourceURL("memory")
        self.name: str = name or str(self.location)

    async def _call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a blocking hook from async code, off the loop when ``offload`` is set."""
        if self.offload:
            return await bridge.offload(func, *args, **kwargs)
        return func(*args, **kwargs)

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    async def create(self) -> None:
        """Create what backs this resource (table, bucket, queue), idempotently."""
        await self._call(self._create_blocking)

    def _create_blocking(self) -> None:
        return None

    async def ping(self) -> None:
        """Raise a :class:`~overcast.errors.ProviderError` if the backing service is unreachable now."""
        await self._call(self._ping_blocking)

    def _ping_blocking(self) -> None:
        return None

    async def aclose(self) -> None:
        """Release connections and clients."""
        import asyncio

        await asyncio.sleep(0)
        self.close()

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.location}>"
