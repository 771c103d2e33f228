"""``pytest --long`` (declared in tests/conftest.py) runs the long profile of the hostile-input tests;
the Azure tests use the Functions worker's helpers of tests/providers/azure (``azf_support``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parents[1] / "providers" / "azure"))


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--long", default=False):
        os.environ["OVERCAST_LONG"] = "1"
