"""``pytest --long`` (declared in tests/conftest.py) runs the soak for 10 minutes per backend."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--long", default=False):
        os.environ["OVERCAST_LONG"] = "1"
