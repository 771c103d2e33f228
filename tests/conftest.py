"""Shared pytest setup: the conformance plugin selects tests by provider capabilities, and one
session fixture per real server (started on first use in each test process, see tests/servers)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any

import hypothesis  # noqa: F401  # imported (and assertion-rewritten) now, not by its plugin at session end
import pytest

import servers
from overcast.testing.conformance.plugin import pytest_collection_modifyitems, pytest_configure
from servers import Server

__all__ = ["pytest_collection_modifyitems", "pytest_configure"]


def _serve(start: Callable[[], Server]) -> Callable[[], Iterator[Server]]:
    def fixture() -> Iterator[Server]:
        server = start()
        server.apply_env()
        yield server
        server.stop()

    return fixture


def _server_fixtures() -> dict[str, Any]:
    """One session fixture per real server, from each family's module in tests/servers
    (``FIXTURES``: name -> start function); a new family adds its servers there, not here."""
    found: dict[str, Any] = {}
    for info in pkgutil.iter_modules(servers.__path__):
        module = importlib.import_module(f"{servers.__name__}.{info.name}")
        for name, start in getattr(module, "FIXTURES", {}).items():
            fixture = _serve(start)
            fixture.__name__ = name
            fixture.__doc__ = f"{start.__doc__ or name} (started on first use in each test process)"
            found[name] = pytest.fixture(scope="session", name=name)(fixture)
    return found


globals().update(_server_fixtures())


@pytest.fixture
def metric_reader() -> Iterator[object]:
    """Telemetry on for one test, its metrics in an in-memory reader (the real SDK); off after."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from overcast import telemetry

    found = InMemoryMetricReader()
    telemetry.configure(service_name="overcast-tests", metric_readers=[found], span_processors=[], set_global=False)
    yield found
    telemetry.shutdown()


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--long``: the long profiles of tests/hostile (more examples) and tests/soak (a longer soak)."""
    parser.addoption("--long", action="store_true", default=False, help="run the long hostile-input and soak profiles")
