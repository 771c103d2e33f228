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


def _connections(raw: redis.Redis, name: str) -> int:
    """Connections the server has from clients named like the test's (redis-py sets no name:
    count them by the database they selected, which only this test's clients use)."""
    return sum(1 for c in raw.client_list() if c.get("db") == "7" and c.get("name") != name)


def test_connections_stay_within_max_connections_under_concurrency(redis_server: Server) -> None:
    """64 concurrent commands on one loop and 16 threads open at most ``max_connections``
    each (redis-py's own pool opens one per concurrent command, without bound)."""
    base = redis_server.env["OVERCAST_TEST_REDIS_URL"].rsplit("/", 1)[0] + "/7"
    name = f"pool-{uuid.uuid4().hex[:6]}"
    kv = overcast.open_kv(f"{base}?prefix={name}&max_connections=3", name=name)
    raw = redis.Redis.from_url(base, client_name="watcher")
    kv.sync.put("k", {"n": 0})
    seen: list[int] = []

    async def burst() -> None:
        async def one(i: int) -> None:
            await kv.put(f"k{i % 8}", {"n": i})
            assert await kv.get(f"k{i % 8}") is not None

        for _ in range(5):
            await asyncio.gather(*(one(i) for i in range(64)))
            seen.append(_connections(raw, "watcher"))

    asyncio.run(burst())
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: kv.sync.put(f"t{i % 8}", {"n": i}), range(200)))
    seen.append(_connections(raw, "watcher"))
    assert max(seen) <= 3 + 3, seen  # the loop's pool and the blocking pool, 3 each
    assert max(seen) >= 2, seen  # the burst did run concurrently
    kv.close()


def test_a_bad_max_connections_is_refused_naming_it(redis_server: Server) -> None:
    from overcast.errors import ConfigError

    base = redis_server.env["OVERCAST_TEST_REDIS_URL"]
    with pytest.raises(ConfigError, match="max_connections"):
        overcast.open_kv(f"{base}?prefix=x&max_connections=0").sync.get("k")
