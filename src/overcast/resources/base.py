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
    call them (see :mod:`overcast.resources.forwarding` for the contract wrappers keep).
    Providers whose hooks block (SDK calls, file and SQLite I/O) set ``offload = True``
    so async callers run them in a worker thread. The default of each form calls the
    other; a class that defines neither form of a hook in ``required_hooks`` gets both
    replaced by one that raises at once, naming the class and the hook.

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
    #: hooks a provider of this kind must define in one form or the other (set by each kind)
    required_hooks: ClassVar[tuple[str, ...]] = ()
    offload: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_hooks(cls)

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


def _missing(cls: type, hook: str) -> Callable[..., Any]:
    def missing(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"{cls.__qualname__} implements neither {hook} nor {hook}_blocking; "
            f"a {cls.kind} provider must define one of them"  # type: ignore[attr-defined]
        )

    missing.__overcast_missing__ = True  # type: ignore[attr-defined]
    return missing


def _is_missing(func: object) -> bool:
    return getattr(func, "__overcast_missing__", False) is True


def _check_hooks(cls: type) -> None:
    """Give ``cls`` a raising hook where it defines neither form, so a call fails at once
    instead of the two defaults calling each other for ever; undo that for a subclass
    that defines one form (the other goes back to the kind's default)."""
    kind_base = next((c for c in cls.__mro__[1:] if "required_hooks" in vars(c) and c is not Resource), None)
    if kind_base is None:
        return
    for hook in kind_base.required_hooks:  # type: ignore[attr-defined]
        blocking = f"{hook}_blocking"
        own, own_blocking = getattr(cls, hook), getattr(cls, blocking)
        default, default_blocking = vars(kind_base)[hook], vars(kind_base)[blocking]
        absent = own is default or _is_missing(own)
        absent_blocking = own_blocking is default_blocking or _is_missing(own_blocking)
        if absent and absent_blocking:
            setattr(cls, hook, _missing(cls, hook))
            setattr(cls, blocking, _missing(cls, hook))
        elif _is_missing(own):
            setattr(cls, hook, default)
        elif _is_missing(own_blocking):
            setattr(cls, blocking, default_blocking)
