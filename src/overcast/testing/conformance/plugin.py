"""The pytest plugin of the conformance suites: runs exactly the tests a provider's capabilities allow.

Load it from your ``conftest.py`` with ``pytest_plugins = ["overcast.testing.conformance.plugin"]``
(or import its hooks there). Tests marked ``overcast_requires("ttl")`` are collected only
for providers that declare ``ttl``; tests marked ``overcast_lacks("ttl")`` only for those
that do not (they check that the operation raises ``NotSupported``). Other tests are
deselected, never skipped.
"""

from __future__ import annotations

import pytest

from .base import applicable

__all__ = ["pytest_collection_modifyitems", "pytest_configure"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "overcast_requires(*capabilities): run only for providers that have them")
    config.addinivalue_line("markers", "overcast_lacks(capability): run only for providers that lack it")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (keep if applicable(item) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
