"""The conformance suite of caches (:class:`overcast.Cache`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, ClassVar

import pytest

import overcast
from overcast.errors import InvalidArgument
from overcast.resources import bridge
from overcast.resources.cache import Cache

from .base import ConformanceSuite, eventually, eventually_sync, in_processes, requires

__all__ = ["CacheSuite"]


def _incr_worker(url: str, times: int) -> int:
    """Increment ``hits`` ``times`` times from another process; return the last value seen."""
    cache = overcast.open_cache(url)
    try:
        last = 0
        for _ in range(times):
            last = cache.sync.incr("hits")
        return last
    finally:
        cache.close()


class CacheSuite(ConformanceSuite):
    """Every semantic of :class:`~overcast.Cache`. ``make_url`` gives the URL of a new, empty cache."""

    kind_capabilities: ClassVar[frozenset[str]] = frozenset({"multiprocess"})
    threads: ClassVar[int] = 8
    increments: ClassVar[int] = 200

    @pytest.fixture
    def make_url(self) -> Callable[[], str]:
        raise NotImplementedError("provide a make_url fixture: () -> URL of a new empty cache")

    @pytest.fixture
    def open_store(self) -> Callable[[str], Cache]:
        return overcast.open_cache

    @pytest.fixture
    def cache_url(self, make_url: Callable[[], str]) -> str:
        return make_url()

    @pytest.fixture
    def cache(self, cache_url: str, open_store: Callable[[str], Cache]) -> Iterator[Cache]:
        cache = open_store(cache_url)
        bridge.run_sync(cache.create())
        yield cache
        cache.close()

    def test_capabilities(self, cache: Cache) -> None:
        self.check_capabilities(cache)

    @pytest.mark.parametrize(
        "value", [1, 0, "text ü 🚀", [1, {"a": None}], {"nested": {"x": [1.5, True]}}, False, ""], ids=repr
    )
    async def test_set_get_delete(self, cache: Cache, value: Any) -> None:
        assert await cache.get("k") is None
        await cache.set("k", value)
        assert await cache.get("k") == value
        assert await cache.delete("k") is True
        assert await cache.get("k") is None
        assert await cache.delete("k") is False

    def test_set_get_delete_sync(self, cache: Cache) -> None:
        c = cache.sync
        c.set("k", {"a": 1})
        c.set("k", {"a": 2})
        assert c.get("k") == {"a": 2}
        assert c.delete("k") is True
        assert c.get("k") is None

    async def test_ttl_expiry(self, cache: Cache) -> None:
        await cache.set("short", "v", ttl=0.5)
        await cache.set("long", "v", ttl=timedelta(minutes=10))
        await cache.set("none", "v")

        async def gone() -> bool:
            return await cache.get("short") is None

        await eventually(gone, what="a value with a 0.5 s ttl to expire")
        assert await cache.get("long") == "v" and await cache.get("none") == "v"

    def test_ttl_expiry_sync(self, cache: Cache) -> None:
        cache.sync.set("short", 1, ttl=0.5)
        eventually_sync(lambda: cache.sync.get("short") is None, what="a value with a 0.5 s ttl to expire")

    async def test_invalid_ttl(self, cache: Cache) -> None:
        for ttl in (0, -1, math.inf, cache.limits.max_ttl + 1, "5"):
            with pytest.raises(InvalidArgument):
                await cache.set("k", 1, ttl=ttl)  # type: ignore[arg-type]
        assert await cache.get("k") is None

    async def test_incr(self, cache: Cache) -> None:
        assert await cache.incr("n") == 1
        assert await cache.incr("n", 5) == 6
        assert await cache.incr("n", -10) == -4
        assert await cache.get("n") == -4
        await cache.set("m", 40)
        assert await cache.incr("m", 2) == 42
        assert cache.sync.incr("fresh", by=3) == 3
        with pytest.raises(InvalidArgument):
            await cache.incr("n", 1.5)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            await cache.incr("n", True)

    def test_incr_is_atomic_across_threads(self, cache: Cache) -> None:
        def bump(_: int) -> None:
            for _ in range(self.increments):
                cache.sync.incr("hits")

        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(bump, range(self.threads)))
        assert cache.sync.get("hits") == self.threads * self.increments

    @requires("multiprocess")
    def test_incr_is_atomic_across_processes(self, cache: Cache, cache_url: str) -> None:
        totals = in_processes(_incr_worker, [(cache_url, self.increments)] * 3)
        assert len(set(totals)) == 3
        assert cache.sync.get("hits") == 3 * self.increments

    async def test_limits(self, cache: Cache) -> None:
        limit = cache.limits.max_value_bytes
        await cache.set("big", "x" * (limit - 2))
        assert await cache.get("big") == "x" * (limit - 2)
        with pytest.raises(InvalidArgument) as info:
            await cache.set("too-big", "x" * (limit - 1))
        assert str(limit) in str(info.value) and "'too-big'" in str(info.value)
        assert await cache.get("too-big") is None
        key_limit = cache.limits.max_key_bytes
        await cache.set("é" * (key_limit // 2), 1)
        assert await cache.get("é" * (key_limit // 2)) == 1
        with pytest.raises(InvalidArgument):
            await cache.set("k" * (key_limit + 1), 1)
        for key in ("", "\ud800"):
            with pytest.raises(InvalidArgument):
                await cache.get(key)

    @pytest.mark.parametrize("value", [{1}, object(), math.nan, b"b"], ids=["set", "object", "nan", "bytes"])
    async def test_non_json_values_are_rejected(self, cache: Cache, value: Any) -> None:
        with pytest.raises(InvalidArgument):
            await cache.set("bad", value)
        assert await cache.get("bad") is None

    async def test_awkward_keys(self, cache: Cache) -> None:
        from .kv import AWKWARD_KEYS

        for i, key in enumerate(AWKWARD_KEYS):
            await cache.set(key, i)
        for i, key in enumerate(AWKWARD_KEYS):
            assert await cache.get(key) == i, key
