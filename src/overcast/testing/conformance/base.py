"""What every conformance suite shares: capability selection, polling and unique names."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import pytest

from ...resources.base import Resource

__all__ = [
    "ConformanceSuite",
    "applicable",
    "eventually",
    "eventually_sync",
    "in_processes",
    "lacks",
    "requires",
    "unique",
]

T = TypeVar("T")

#: How long a test waits for something that must happen soon (an expiry, a redelivery).
PATIENCE = 15.0


def requires(*capabilities: str) -> pytest.MarkDecorator:
    """Collect the test only for providers declaring every one of ``capabilities``."""
    return pytest.mark.overcast_requires(*capabilities)


def lacks(capability: str) -> pytest.MarkDecorator:
    """Collect the test only for providers that do not declare ``capability``."""
    return pytest.mark.overcast_lacks(capability)


def unique(prefix: str = "t") -> str:
    """A name no other test (or xdist worker) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class ConformanceSuite:
    """Base of the suites. Subclass one with a ``Test`` name, set ``provider`` (the class
    under test, whose ``capabilities`` select the tests) and provide the ``make_url`` fixture.

    Attributes:
        provider: the provider class; its ``capabilities`` decide which tests run.
        capabilities: overrides ``provider.capabilities`` (for wrappers that forward them).
        kind_capabilities: every optional capability of the interface.
    """

    provider: ClassVar[type[Resource] | None] = None
    capabilities: ClassVar[frozenset[str] | None] = None
    kind_capabilities: ClassVar[frozenset[str]] = frozenset()
    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.anyio]

    @classmethod
    def declared_capabilities(cls) -> frozenset[str]:
        if cls.capabilities is not None:
            return cls.capabilities
        if cls.provider is None:
            raise TypeError(f"{cls.__name__}: set provider (the class under test) or capabilities")
        return frozenset(cls.provider.capabilities)

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture(autouse=True)
    def _capabilities_selected(self, request: pytest.FixtureRequest) -> None:
        if not applicable(request.node):
            pytest.fail(
                "this test does not apply to the provider's capabilities but was collected: "
                "add pytest_plugins = ['overcast.testing.conformance.plugin'] to your conftest.py"
            )

    def check_capabilities(self, resource: Resource) -> None:
        """The opened resource reports exactly the declared capabilities."""
        declared = self.declared_capabilities()
        for capability in sorted(self.kind_capabilities | declared):
            assert resource.supports(capability) == (capability in declared), (
                f"{resource!r}.supports({capability!r}) disagrees with the declared capabilities {sorted(declared)}"
            )


def applicable(item: Any) -> bool:
    """Whether a collected test applies to its suite's provider (False: deselect it)."""
    cls = getattr(item, "cls", None)
    if cls is None or not issubclass(cls, ConformanceSuite):
        return True
    have = cls.declared_capabilities()
    required = all(set(mark.args) <= have for mark in item.iter_markers("overcast_requires"))
    return required and not any(set(mark.args) & have for mark in item.iter_markers("overcast_lacks"))


async def eventually(check: Callable[[], Awaitable[T | None]], *, what: str, patience: float = PATIENCE) -> T:
    """Call ``check`` until it returns something other than None or False; fail after ``patience``."""
    deadline = time.monotonic() + patience
    delay = 0.02
    while True:
        result = await check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {patience:g} s")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def eventually_sync(check: Callable[[], T | None], *, what: str, patience: float = PATIENCE) -> T:
    """Blocking :func:`eventually`."""
    deadline = time.monotonic() + patience
    delay = 0.02
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {patience:g} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def in_processes(worker: Callable[..., Any], args: list[tuple[Any, ...]], *, timeout: float = 120.0) -> list[Any]:
    """Run ``worker(*args[i], start, results)`` in one 'spawn' process per entry, started together.

    Each worker waits on the barrier ``start`` and puts its outcome on ``results``;
    the outcomes are returned in the order of ``args``.
    """
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(len(args))
    results = ctx.Queue()
    procs = [ctx.Process(target=_report, args=(worker, i, item, start, results)) for i, item in enumerate(args)]
    for proc in procs:
        proc.start()
    try:
        outcomes = dict(results.get(timeout=timeout) for _ in procs)
    finally:
        for proc in procs:
            proc.join(timeout=timeout)
            if proc.is_alive():
                proc.kill()
    assert all(proc.exitcode == 0 for proc in procs), [proc.exitcode for proc in procs]
    errors = [outcome for outcome in outcomes.values() if isinstance(outcome, BaseException)]
    if errors:
        raise errors[0]
    return [outcomes[i] for i in range(len(args))]


def _report(worker: Callable[..., Any], index: int, args: tuple[Any, ...], start: Any, results: Any) -> None:
    try:
        start.wait(timeout=60)
        outcome = worker(*args)
    except BaseException as exc:  # the parent re-raises it
        outcome = RuntimeError(f"process {index}: {exc!r}")
    results.put((index, outcome))
