"""The PostgreSQL providers under the conformance suites, on Debian's PostgreSQL (tests/servers/postgres.py)."""

from __future__ import annotations

import os
from pathlib import Path

from ..providers import Case


def _store(tmp: Path, name: str) -> str:
    return f"{os.environ['OVERCAST_TEST_POSTGRES_URL']}?store={name}"


def _queue(tmp: Path, name: str) -> str:
    return f"{os.environ['OVERCAST_TEST_POSTGRES_URL']}?queue={name}"


def _topic(tmp: Path, name: str) -> str:
    return f"{os.environ['OVERCAST_TEST_POSTGRES_URL']}?topic={name}"


CASES: list[Case] = [
    Case("kv", "postgresql", _store, server="postgres_server"),
    Case("queue", "postgresql", _queue, server="postgres_server"),
    Case("topic", "postgresql", _topic, server="postgres_server"),
]
