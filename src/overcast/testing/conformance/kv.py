"""The conformance suite of key-value stores (:class:`overcast.KeyValueStore`)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

import overcast
from overcast.errors import Conflict, InvalidArgument, NotSupported
from overcast.resources.kv import KeyValueStore

from .base import ConformanceSuite, eventually, eventually_sync, in_processes, lacks, requires
from .kv_order import PutIfNewerCases, PutWithLogCases

__all__ = ["AWKWARD_KEYS", "KeyValueStoreSuite"]

#: Keys every store must keep apart and give back unchanged.
AWKWARD_KEYS = [
    "a/b",
    "../x",
    " ",
    "%2F",
    "a%2Fb",
    "~7E",
    "ünïcødé",
    "日本語のキー",
    "🚀/🌍",
    "a\x00b",
    "tab\tnew\nline",
    "back\\slash",
    "'quote\"",
    "*?[]{}",
    ".",
    "..",
]

NESTED = {
    "name": "Zoë",
    "tags": ["a", "ß", "🙂"],
    "n": 3,
    "x": 1.5,
    "ok": True,
    "none": None,
    "deep": {"list": [{"a": [1, 2, {"b": "c"}]}], "empty": {}, "e": []},
}


def _race_worker(url: str, key: str, version: str, who: int) -> str:
    """One of several processes writing ``key`` if it is still at ``version``."""
    store = overcast.open_kv(url)
    try:
        store.sync.put(key, {"writer": who}, if_version=version)
    except Conflict:
        return "conflict"
    finally:
        store.close()
    return "won"


class KeyValueStoreSuite(PutIfNewerCases, PutWithLogCases, ConformanceSuite):
    """Every semantic of :class:`~overcast.KeyValueStore`, on both faces.

    Provide a fixture ``make_url`` returning a callable that gives the URL of a new,
    empty store each call (``overcast.open_kv(url)`` must open it, in this process and
    in others when the provider declares ``multiprocess``). Override ``open_store`` to
    test a wrapper (it takes the URL and returns the store to test).
    """

    kind_capabilities: ClassVar[frozenset[str]] = frozenset(
        {"ttl", "ordered_scan", "multiprocess", "put_if_newer", "put_with_log"}
    )
    processes: ClassVar[int] = 4
    threads: ClassVar[int] = 8
    many: ClassVar[int] = 5000

    @pytest.fixture
    def make_url(self) -> Callable[[], str]:
        raise NotImplementedError("provide a make_url fixture: () -> URL of a new empty store")

    @pytest.fixture
    def open_store(self) -> Callable[[str], KeyValueStore]:
        return overcast.open_kv

    @pytest.fixture
    def store_url(self, make_url: Callable[[], str]) -> str:
        return make_url()

    @pytest.fixture
    def store(self, store_url: str, open_store: Callable[[str], KeyValueStore]) -> Iterator[KeyValueStore]:
        kv = open_store(store_url)
        kv.sync.create()
        yield kv
        kv.close()

    # -- basics -----------------------------------------------------------------------

    def test_capabilities(self, store: KeyValueStore) -> None:
        self.check_capabilities(store)

    async def test_round_trip(self, store: KeyValueStore) -> None:
        assert await store.get("absent") is None
        version = await store.put("user:1", NESTED)
        assert isinstance(version, str) and version
        item = await store.get("user:1")
        assert item is not None
        assert (item.key, item.value, item.version, item.expires_at) == ("user:1", NESTED, version, None)
        assert await store.delete("user:1") is True
        assert await store.get("user:1") is None
        assert await store.delete("user:1") is False

    def test_round_trip_sync(self, store: KeyValueStore) -> None:
        kv = store.sync
        assert kv.get("absent") is None
        version = kv.put("user:1", NESTED)
        item = kv.get("user:1")
        assert item is not None and (item.value, item.version) == (NESTED, version)
        assert kv.delete("user:1") is True
        assert kv.get("user:1") is None
        assert kv.delete("user:1") is False

    async def test_value_is_a_copy(self, store: KeyValueStore) -> None:
        value: dict[str, Any] = {"list": [1]}
        await store.put("k", value)
        value["list"].append(2)
        item = await store.get("k")
        assert item is not None and item.value == {"list": [1]}
        item.value["list"].append(3)
        again = await store.get("k")
        assert again is not None and again.value == {"list": [1]}

    async def test_unicode_values(self, store: KeyValueStore) -> None:
        value = {"ключ": "значение", "emoji": "👩‍💻🏳️‍🌈", "nul": "a\x00b", "quote": "\"'\\", "big": 2**53}
        await store.put("u", value)
        item = await store.get("u")
        assert item is not None and item.value == value

    # -- versions -----------------------------------------------------------------------

    async def test_versions_change_on_every_write(self, store: KeyValueStore) -> None:
        seen = {await store.put("k", {"n": 1}) for _ in range(5)}
        assert len(seen) == 5
        await store.delete("k")
        seen.add(await store.put("k", {"n": 1}))
        assert len(seen) == 6
        item = await store.get("k")
        assert item is not None and item.version in seen

    async def test_if_version(self, store: KeyValueStore) -> None:
        v1 = await store.put("k", {"n": 1})
        v2 = await store.put("k", {"n": 2}, if_version=v1)
        assert v2 != v1
        with pytest.raises(Conflict):
            await store.put("k", {"n": 3}, if_version=v1)
        item = await store.get("k")
        assert item is not None and (item.value, item.version) == ({"n": 2}, v2)
        with pytest.raises(Conflict):
            await store.put("absent", {"n": 1}, if_version=v2)
        assert await store.get("absent") is None

    async def test_if_absent(self, store: KeyValueStore) -> None:
        v1 = await store.put("k", {"n": 1}, if_absent=True)
        with pytest.raises(Conflict):
            await store.put("k", {"n": 2}, if_absent=True)
        item = await store.get("k")
        assert item is not None and (item.value, item.version) == ({"n": 1}, v1)
        await store.delete("k")
        await store.put("k", {"n": 3}, if_absent=True)

    async def test_both_conditions_is_invalid(self, store: KeyValueStore) -> None:
        v1 = await store.put("k", {"n": 1})
        with pytest.raises(InvalidArgument):
            await store.put("k", {"n": 2}, if_version=v1, if_absent=True)

    async def test_delete_if_version(self, store: KeyValueStore) -> None:
        v1 = await store.put("k", {"n": 1})
        v2 = await store.put("k", {"n": 2})
        with pytest.raises(Conflict):
            await store.delete("k", if_version=v1)
        assert await store.get("k") is not None
        assert await store.delete("k", if_version=v2) is True
        assert await store.get("k") is None

    async def test_stale_version_after_delete_and_recreate_loses(self, store: KeyValueStore) -> None:
        stale = await store.put("k", {"n": 1})
        await store.delete("k")
        fresh = await store.put("k", {"n": 2})
        assert fresh != stale
        with pytest.raises(Conflict):
            await store.put("k", {"n": 3}, if_version=stale)
        with pytest.raises(Conflict):
            await store.delete("k", if_version=stale)
        item = await store.get("k")
        assert item is not None and item.value == {"n": 2}

    def test_conditions_sync(self, store: KeyValueStore) -> None:
        kv = store.sync
        v1 = kv.put("k", {"n": 1}, if_absent=True)
        with pytest.raises(Conflict):
            kv.put("k", {"n": 0}, if_absent=True)
        v2 = kv.put("k", {"n": 2}, if_version=v1)
        with pytest.raises(Conflict):
            kv.put("k", {"n": 3}, if_version=v1)
        with pytest.raises(Conflict):
            kv.delete("k", if_version=v1)
        assert kv.delete("k", if_version=v2) is True
        kv.put("k", {"n": 4})
        with pytest.raises(Conflict):
            kv.put("k", {"n": 5}, if_version=v2)

    def test_racing_writers_threads(self, store: KeyValueStore) -> None:
        base = store.sync.put("race", {"writer": -1})
        barrier = threading.Barrier(self.threads)

        def write(who: int) -> bool:
            barrier.wait(timeout=30)
            try:
                store.sync.put("race", {"writer": who}, if_version=base)
            except Conflict:
                return False
            return True

        with ThreadPoolExecutor(self.threads) as pool:
            won = list(pool.map(write, range(self.threads)))
        assert won.count(True) == 1, won
        item = store.sync.get("race")
        assert item is not None and item.value == {"writer": won.index(True)}

    async def test_racing_writers_tasks(self, store: KeyValueStore) -> None:
        import asyncio

        base = await store.put("race", {"writer": -1})

        async def write(who: int) -> bool:
            try:
                await store.put("race", {"writer": who}, if_version=base)
            except Conflict:
                return False
            return True

        won = await asyncio.gather(*(write(i) for i in range(self.threads)))
        assert won.count(True) == 1, won

    @requires("multiprocess")
    def test_racing_writers_processes(self, store: KeyValueStore, store_url: str) -> None:
        base = store.sync.put("race", {"writer": -1})
        outcomes = in_processes(_race_worker, [(store_url, "race", base, who) for who in range(self.processes)])
        assert sorted(outcomes) == ["conflict"] * (self.processes - 1) + ["won"], outcomes
        winners = [who for who, outcome in enumerate(outcomes) if outcome == "won"]
        item = store.sync.get("race")
        assert item is not None and item.value == {"writer": winners[0]}

    # -- limits and validation --------------------------------------------------------------

    async def test_value_at_the_size_limit(self, store: KeyValueStore) -> None:
        limit = store.limits.max_value_bytes
        at_limit = {"v": "x" * (limit - len('{"v":""}'))}
        await store.put("big", at_limit)
        item = await store.get("big")
        assert item is not None and item.value == at_limit
        past = {"v": "x" * (limit - len('{"v":""}') + 1)}
        with pytest.raises(InvalidArgument) as info:
            await store.put("too-big", past)
        assert "'too-big'" in str(info.value) and str(limit) in str(info.value)
        assert await store.get("too-big") is None
        with pytest.raises(InvalidArgument):
            await store.put("big", past)
        item = await store.get("big")
        assert item is not None and item.value == at_limit

    def test_value_past_the_size_limit_sync(self, store: KeyValueStore) -> None:
        limit = store.limits.max_value_bytes
        multibyte = {"v": "é" * ((limit - len('{"v":""}')) // 2 + 1)}
        with pytest.raises(InvalidArgument) as info:
            store.sync.put("too-big", multibyte)
        assert str(limit) in str(info.value)
        with pytest.raises(InvalidArgument):
            store.sync.put_many({"fine": {"a": 1}, "too-big": multibyte})
        assert store.sync.get_many(["fine", "too-big"]) == {}

    async def test_keys_at_the_byte_limit(self, store: KeyValueStore) -> None:
        limit = store.limits.max_key_bytes
        for key in ("k" * limit, "é" * (limit // 2), "🚀" * (limit // 4)):
            await store.put(key, {"len": len(key)})
            item = await store.get(key)
            assert item is not None and item.key == key
        for key in ("k" * (limit + 1), "é" * (limit // 2) + "x"):
            with pytest.raises(InvalidArgument) as info:
                await store.put(key, {"a": 1})
            assert str(limit) in str(info.value)
            with pytest.raises(InvalidArgument):
                await store.get(key)

    @pytest.mark.parametrize("key", ["", "\ud800", "a\udfffb"], ids=["empty", "lone-high", "lone-low"])
    async def test_invalid_keys(self, store: KeyValueStore, key: str) -> None:
        with pytest.raises(InvalidArgument):
            await store.put(key, {"a": 1})
        with pytest.raises(InvalidArgument):
            await store.get(key)
        with pytest.raises(InvalidArgument):
            store.sync.delete(key)

    async def test_non_str_key(self, store: KeyValueStore) -> None:
        with pytest.raises(InvalidArgument):
            await store.put(1, {"a": 1})  # type: ignore[arg-type]

    async def test_awkward_keys(self, store: KeyValueStore) -> None:
        for i, key in enumerate(AWKWARD_KEYS):
            await store.put(key, {"i": i})
        for i, key in enumerate(AWKWARD_KEYS):
            item = await store.get(key)
            assert item is not None and (item.key, item.value) == (key, {"i": i}), key
        scanned = {item.key: item.value["i"] async for item in store.scan()}
        assert scanned == {key: i for i, key in enumerate(AWKWARD_KEYS)}
        found = {item.key async for item in store.scan("a")}
        assert found == {k for k in AWKWARD_KEYS if k.startswith("a")}
        for key in AWKWARD_KEYS:
            assert await store.delete(key) is True
        assert [item async for item in store.scan()] == []

    async def test_prefix_is_not_a_pattern(self, store: KeyValueStore) -> None:
        for key in ("a%b", "axb", "a_b", "a.b", "a*b", "a[b"):
            await store.put(key, {})
        for prefix in ("a%", "a_", "a.", "a*", "a["):
            assert [item.key async for item in store.scan(prefix)] == [prefix + "b"], prefix

    @pytest.mark.parametrize(
        "value",
        [
            {"s": {1, 2}},
            {"o": object()},
            {"nan": math.nan},
            {"inf": math.inf},
            {"deep": [{"b": b"bytes"}]},
            ["not", "a", "dict"],
            "text",
            None,
        ],
        ids=["set", "object", "nan", "inf", "bytes", "list", "str", "none"],
    )
    async def test_non_json_values_are_rejected(self, store: KeyValueStore, value: Any) -> None:
        with pytest.raises(InvalidArgument) as info:
            await store.put("bad", value)
        assert "'bad'" in str(info.value)
        with pytest.raises(InvalidArgument):
            store.sync.put("bad", value)
        with pytest.raises(InvalidArgument):
            await store.put_many({"good": {"a": 1}, "bad": value})
        assert await store.get_many(["good", "bad"]) == {}

    async def test_ttl_must_be_positive(self, store: KeyValueStore) -> None:
        for ttl in (0, -1, timedelta(0), "10"):
            with pytest.raises(InvalidArgument):
                await store.put("k", {"a": 1}, ttl=ttl)  # type: ignore[arg-type]
        assert await store.get("k") is None

    # -- scans ------------------------------------------------------------------------------

    async def test_scan_by_prefix(self, store: KeyValueStore) -> None:
        await store.put_many({f"a/{i}": {"i": i} for i in range(7)} | {"b/1": {}, "a": {}, "ab": {}})
        keys = [item.key async for item in store.scan("a/")]
        assert sorted(keys) == [f"a/{i}" for i in range(7)]
        if store.supports("ordered_scan"):
            assert keys == sorted(keys)
            assert [item.key async for item in store.scan()] == sorted(["a", "ab", "b/1", *keys])
        assert len([item async for item in store.scan("a/", limit=3)]) == 3
        assert [item async for item in store.scan("nothing")] == []

    async def test_page_continuation(self, store: KeyValueStore) -> None:
        await store.put_many({f"p/{i:02}": {"i": i} for i in range(11)} | {"q": {}})
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = await store.page("p/", limit=3, cursor=cursor)
            assert len(page.items) <= 3
            seen += [item.key for item in page.items]
            pages += 1
            assert pages < 20
            if page.cursor is None:
                break
            cursor = page.cursor
        assert sorted(seen) == [f"p/{i:02}" for i in range(11)]
        assert len(set(seen)) == len(seen)
        if store.supports("ordered_scan"):
            assert seen == sorted(seen)

    def test_page_continuation_sync(self, store: KeyValueStore) -> None:
        store.sync.put_many({f"p/{i:02}": {"i": i} for i in range(7)})
        seen: list[str] = []
        page = store.sync.page("p/", limit=2)
        seen += [item.key for item in page.items]
        while page.cursor is not None:
            page = store.sync.page("p/", limit=2, cursor=page.cursor)
            seen += [item.key for item in page.items]
        assert sorted(seen) == [f"p/{i:02}" for i in range(7)] and len(set(seen)) == 7
        scanned = [item.key for item in store.sync.scan("p/")]
        assert sorted(scanned) == sorted(seen)
        if store.supports("ordered_scan"):
            assert scanned == seen == sorted(seen)
        assert len(list(store.sync.scan("p/", limit=4))) == 4

    async def test_scan_limit_must_be_positive(self, store: KeyValueStore) -> None:
        for limit in (0, -1, 1.5, True):
            with pytest.raises(InvalidArgument):
                await store.page("", limit=limit)  # type: ignore[arg-type]

    async def test_pagination_over_many_items(self, store: KeyValueStore) -> None:
        expected = [f"item/{i:05}" for i in range(self.many)]
        for start in range(0, self.many, 1000):
            await store.put_many({key: {"i": int(key[5:])} for key in expected[start : start + 1000]})
        await store.put("other", {})
        keys = [item.key async for item in store.scan("item/")]
        assert len(keys) == self.many and set(keys) == set(expected)
        if store.supports("ordered_scan"):
            assert keys == expected
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = await store.page("item/", limit=997, cursor=cursor)
            assert len(page.items) <= 997
            seen += [item.key for item in page.items]
            if page.cursor is None:
                break
            cursor = page.cursor
        assert len(seen) == self.many and set(seen) == set(expected)
        assert len([item async for item in store.scan("item/", limit=2500)]) == 2500
        assert len([item async for item in store.scan()]) == self.many + 1

    # -- batches ------------------------------------------------------------------------------

    async def test_get_many_and_put_many(self, store: KeyValueStore) -> None:
        versions = await store.put_many({"a": {"n": 1}, "b": {"n": 2}, "ü/🚀": {"n": 3}})
        assert sorted(versions) == ["a", "b", "ü/🚀"]
        found = await store.get_many(["a", "missing", "ü/🚀", "a"])
        assert sorted(found) == ["a", "ü/🚀"]
        assert found["a"].value == {"n": 1} and found["a"].version == versions["a"]
        assert found["ü/🚀"].key == "ü/🚀"
        assert await store.get_many([]) == {}
        assert await store.put_many({}) == {}
        again = await store.put_many({"a": {"n": 10}})
        assert again["a"] != versions["a"]
        with pytest.raises(InvalidArgument):
            await store.get_many("ab")

    def test_get_many_and_put_many_sync(self, store: KeyValueStore) -> None:
        versions = store.sync.put_many({"a": {"n": 1}, "b": {"n": 2}})
        found = store.sync.get_many(["b", "c"])
        assert list(found) == ["b"] and found["b"].version == versions["b"]

    # -- TTL --------------------------------------------------------------------------------

    @requires("ttl")
    async def test_ttl_expiry(self, store: KeyValueStore) -> None:
        await store.put("short", {"a": 1}, ttl=0.5)
        await store.put("long", {"a": 2}, ttl=timedelta(minutes=10))
        await store.put("forever", {"a": 3})
        long = await store.get("long")
        assert long is not None and long.expires_at is not None and long.expires_at.tzinfo is not None
        now = datetime.now(UTC)
        assert now < long.expires_at <= now + timedelta(minutes=11)
        forever = await store.get("forever")
        assert forever is not None and forever.expires_at is None

        async def gone() -> bool:
            return await store.get("short") is None

        await eventually(gone, what="an item with a 0.5 s ttl to expire")
        assert [item.key async for item in store.scan()] in (["forever", "long"], ["long", "forever"])
        assert sorted(await store.get_many(["short", "long", "forever"])) == ["forever", "long"]
        await store.put("short", {"a": 4}, if_absent=True)

    @requires("ttl")
    def test_ttl_expiry_sync(self, store: KeyValueStore) -> None:
        store.sync.put_many({"x": {}, "y": {}}, ttl=0.5)
        store.sync.put("z", {}, ttl=600)
        eventually_sync(lambda: store.sync.get("x") is None, what="put_many items with a 0.5 s ttl to expire")
        assert [item.key for item in store.sync.scan()] == ["z"]

    @requires("ttl")
    async def test_rewrite_without_ttl_keeps_the_item(self, store: KeyValueStore) -> None:
        version = await store.put("k", {"a": 1}, ttl=5)
        await store.put("k", {"a": 2}, if_version=version)
        item = await store.get("k")
        assert item is not None and item.expires_at is None

    @lacks("ttl")
    async def test_ttl_not_supported(self, store: KeyValueStore) -> None:
        with pytest.raises(NotSupported):
            await store.put("k", {"a": 1}, ttl=10)
