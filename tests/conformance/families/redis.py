"""The Redis providers under the conformance suites, on redis-server from Debian (tests/servers/redis.py)."""

from __future__ import annotations

import os
from pathlib import Path

from ..providers import Case


def _redis(tmp: Path, name: str) -> str:
    return f"{os.environ['OVERCAST_TEST_REDIS_URL']}?prefix={name}"


CASES: list[Case] = [
    Case("cache", "redis", _redis, server="redis_server"),
    Case("kv", "redis", _redis, server="redis_server"),
    Case("queue", "redis", _redis, server="redis_server"),
    Case("topic", "redis", _redis, server="redis_server"),
]
