"""redis-py's retries (timeouts, dropped connections) are counted as ``overcast.retries``
under the provider call that made them, on a real redis-server paused mid-call."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import overcast
from metrics_support import total
from servers import Server


def test_a_paused_server_makes_retries_that_are_counted(
    redis_server: Server, metric_reader: InMemoryMetricReader
) -> None:
    base = redis_server.env["OVERCAST_TEST_REDIS_URL"]
    name = f"paused-{uuid.uuid4().hex[:6]}"
    # A short read timeout, so that a paused server times a command out and redis-py retries it.
    cache = overcast.open_cache(f"{base}?prefix={name}&socket_timeout=0.15&retry_on_timeout=true", name=name)
    cache.sync.set("k", {"v": 1})
    raw = redis.Redis.from_url(base)

    raw.execute_command("CLIENT", "PAUSE", "400", "ALL")
    assert cache.sync.get("k") == {"v": 1}  # answered once the pause ends
    blocking = total(metric_reader, "overcast.retries", upstream="redis", operation="get", resource=name)
    assert blocking >= 1

    async def read() -> object:
        await cache.get("k")  # the loop's client connects before the pause
        raw.execute_command("CLIENT", "PAUSE", "400", "ALL")
        return await cache.get("k")

    assert asyncio.run(read()) == {"v": 1}
    assert total(metric_reader, "overcast.retries", upstream="redis", operation="get", resource=name) > blocking
    assert cache.sync.get("k") == {"v": 1}


@pytest.mark.parametrize("option", ["retries=many", "retry_on_timeout=sometimes"])
def test_bad_retry_options_are_refused_naming_them(redis_server: Server, option: str) -> None:
    from overcast.errors import ConfigError

    base = redis_server.env["OVERCAST_TEST_REDIS_URL"]
    with pytest.raises(ConfigError, match=option.split("=")[0]):
        overcast.open_cache(f"{base}?prefix=bad-{uuid.uuid4().hex[:6]}&{option}")
